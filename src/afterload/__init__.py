"""afterload: land JSON streams in a warehouse, exactly once, and keep dbt Cloud jobs fresh."""

__version__ = "0.1.0"
