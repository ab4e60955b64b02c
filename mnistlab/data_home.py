"""Where the data lives: the folders searched for MNIST when no `data_root` is given.

    find_data_root()      # the first folder below that holds the four IDX files
    cache_dir('mnist')    # the per-user cache that `python -m mnistlab.download` downloads into

The search order, first match wins:

1. `./data`, the folder the assignment's notebook and command line expect;
2. the `data/` folder of the checkout this package was imported from (an editable install,
   or the repository itself), which ships MNIST;
3. the per-user cache: `$MNISTLAB_DATA/<dataset>` when that variable is set, else the
   operating system's cache folder (`~/.cache/mnistlab/<dataset>` on Linux), as pooch,
   scikit-learn and Keras do.
"""
import os

import pooch

ENV_VAR = "MNISTLAB_DATA"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class DataNotFoundError(FileNotFoundError):
    """The data folder or one of its IDX files is missing."""


def idx_file_names(prefix, kind):
    """Every spelling of one MNIST file: `train-images-idx3-ubyte`, `train-images.idx3-ubyte`,
    each raw or with `.gz`. `prefix` is 'train' or 't10k', `kind` 'images' or 'labels'."""
    tag = "idx3" if kind == "images" else "idx1"
    names = (f"{prefix}-{kind}-{tag}-ubyte", f"{prefix}-{kind}.{tag}-ubyte")
    return [name + suffix for name in names for suffix in ("", ".gz")]


def holds_dataset(folder):
    """True when `folder` holds all four IDX files, in any of their spellings."""
    return all(any(os.path.isfile(os.path.join(folder, name)) for name in idx_file_names(p, k))
               for p in ("train", "t10k") for k in ("images", "labels"))


def cache_dir(dataset="mnist"):
    """The per-user folder that holds downloaded copies of `dataset`."""
    base = os.environ.get(ENV_VAR) or str(pooch.os_cache("mnistlab"))
    return os.path.join(os.path.expanduser(base), dataset)


def checkout_data_dir():
    """The `data/` folder of the repository this package sits in, or None when installed."""
    root = os.path.dirname(_PACKAGE_DIR)
    if os.path.isfile(os.path.join(root, "pyproject.toml")):
        return os.path.join(root, "data")
    return None


def search_path(dataset="mnist"):
    """The folders searched for `dataset`, in order (see the module docstring)."""
    folders = [os.path.abspath("data"), checkout_data_dir(), cache_dir(dataset)]
    unique = []
    for folder in folders:
        if folder is not None and folder not in unique:
            unique.append(folder)
    return unique


def find_data_root(dataset="mnist"):
    """The first folder of `search_path()` holding the four IDX files.

    Raises:
        DataNotFoundError: listing every folder looked in and the command that downloads the
            data into the cache.
    """
    for folder in search_path(dataset):
        if holds_dataset(folder):
            return folder
    looked = "\n  ".join(search_path(dataset))
    raise DataNotFoundError(
        f"{dataset} not found: no data_root was given, and none of these folders holds its four "
        f"IDX files:\n  {looked}\nDownload it into the cache with:  {fetch_command(dataset)}\n"
        "or set cfg['data_root'] to the folder that holds the files.")


def fetch_command(dataset="mnist"):
    """The shell command that downloads `dataset` into its cache folder."""
    option = "" if dataset == "mnist" else f" --dataset {dataset}"
    return f"python -m mnistlab.download{option}"
