"""The Spark side of Tally: the only package that imports pyspark."""
