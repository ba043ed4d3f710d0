"""The VWAP service: exact VWAP over any window, rolling series, live streams with revisions."""
