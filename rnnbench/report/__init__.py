"""The static HTML report: sections built from the tidy frame, matplotlib charts, one offline page.

Needs the `report` extra (pandas, matplotlib).
"""
