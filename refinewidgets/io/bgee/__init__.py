"""Bgee's droplet single-cell files: H5AD files (obs, var, counts), Bgee's conventions and
species, species tarballs indexed without extracting them, and a file as a catalog source.
"""
