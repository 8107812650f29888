"""Raw-data contract, validation, ingest into the canonical NetCDF, preprocessing and splits.

See docs/data-format.md for the files a site needs and the canonical dataset's layout.
"""

from sacnn.data.ingest import build_dataset, ingest, open_dataset, validate_canonical
from sacnn.data.options import IngestOptions
from sacnn.data.preprocess import TrainingArrays, fraction_count, training_arrays
from sacnn.data.raw import RawSite, read_site
from sacnn.data.validate import DataValidationError

__all__ = [
    "DataValidationError",
    "IngestOptions",
    "RawSite",
    "TrainingArrays",
    "build_dataset",
    "fraction_count",
    "ingest",
    "open_dataset",
    "read_site",
    "training_arrays",
    "validate_canonical",
]
