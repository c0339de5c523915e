"""curator: data-centric labelling and curation for image classification.

Everything the ``curator`` command does is importable::

    from curator.library import open_library
    from curator import ingest

    lib = open_library("db/curator.sqlite")
    summary = ingest.import_paths(lib, ["sample_data/library"], labels_from_folders=True)
"""

__version__ = "0.1.0"
