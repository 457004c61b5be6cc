"""What holds files, for every format: zip, folder and tar stores, safe member names, read caps
(zip bombs), atomic output, deflate. Nothing here knows a file format.
"""
