"""Numbers read from run directories: statistics, verdicts, tables, the report and the multi-seed aggregate."""
