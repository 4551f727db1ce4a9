"""Where the tests read real images: the package's own data-directory setting."""
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import DATASET_DIR

ROOT = get_settings(slice="full").data_dir / DATASET_DIR
TRAIN = ROOT / "train"
