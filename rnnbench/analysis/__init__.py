"""Reading results back: the tidy frame, compare's verdicts, history step detection, and doctor.

Needs the `report` extra (pandas, scipy); nothing here is imported by `import rnnbench`.
"""
