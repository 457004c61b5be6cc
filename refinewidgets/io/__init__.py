"""Reading and writing files: refine.bio zips and folders, Bgee H5AD files.

Imports the core, never the widgets.
"""
