"""Raw-data contract, validation, ingest into the canonical NetCDF, preprocessing and splits.

See docs/data-format.md for the files a site needs and the canonical dataset's layout.
"""

from sacnn._lazy import lazy_package

# Loaded on first use (sacnn._lazy): the workflow imports the light modules of this package
# (options, raw, validate) while it parses, and must not load xarray to do so.
_EXPORTS = {
    "build_dataset": "sacnn.data.ingest",
    "DataValidationError": "sacnn.data.validate",
    "fraction_count": "sacnn.data.preprocess",
    "ingest": "sacnn.data.ingest",
    "IngestOptions": "sacnn.data.options",
    "open_dataset": "sacnn.data.ingest",
    "RawSite": "sacnn.data.raw",
    "read_site": "sacnn.data.raw",
    "training_arrays": "sacnn.data.preprocess",
    "TrainingArrays": "sacnn.data.preprocess",
    "validate_canonical": "sacnn.data.ingest",
}

lazy_package(__name__)
