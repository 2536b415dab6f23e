"""numpy + pyarrow kernels that turn rows into count-table cells; no Spark here.

The rules every reader follows are defined in these modules, once: which rows are
invalid and why (:mod:`.validity`), the bucket of a score and the side of a
threshold (:mod:`.buckets`), what a cell id means per task (:mod:`.cells`), and the
Arrow batch columns a reader hands the kernels (:mod:`.batches`). The counting
itself: binary rows (:mod:`.binary`), multi-label rows (:mod:`.multilabel`), slice
values of a batch (:mod:`.slices`) and the refinement passes of exact AUC
(:mod:`.refine`). Where the Spark SQL reader restates a rule in SQL
(:mod:`tally.spark.rules`), ``tests/test_rules_sql_vs_numpy.py`` holds the two to
the same answers.
"""
