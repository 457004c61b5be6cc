"""refine.bio's file formats: the matrix TSV, quant.sf files, metadata TSV and JSON, a download's
layout, the zip (``read_zip``, ``write_zip``) and the catalog sources made of them.

The files are read from and written to the containers of :mod:`refinewidgets.io.containers`.
"""
