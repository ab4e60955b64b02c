"""Where the data is found when no data_root is given: ./data, the checkout's data/, the cache."""
import os

import pytest

from conftest import MNIST_ROOT, ROOT, write_dataset
from mnistlab import data_home
from mnistlab.data_home import DataNotFoundError, find_data_root, holds_dataset, search_path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder with no data, a cache folder of its own, and no checkout."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv(data_home.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(data_home, "checkout_data_dir", lambda: None)
    return tmp_path


def test_the_search_order_is_local_data_checkout_then_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(data_home.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(data_home, "checkout_data_dir", lambda: "/checkout/data")
    assert search_path() == [str(tmp_path / "data"), "/checkout/data",
                             str(tmp_path / "cache" / "mnist")]


def test_the_cache_follows_the_environment_variable_and_names_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv(data_home.ENV_VAR, str(tmp_path))
    assert data_home.cache_dir("fashion-mnist") == str(tmp_path / "fashion-mnist")
    monkeypatch.delenv(data_home.ENV_VAR)
    assert data_home.cache_dir().endswith(os.path.join("mnistlab", "mnist"))


def test_a_local_data_folder_comes_first(elsewhere):
    write_dataset(elsewhere / "work" / "data", num_train=20, num_test=5)
    write_dataset(elsewhere / "cache" / "mnist", num_train=20, num_test=5)
    assert find_data_root() == str(elsewhere / "work" / "data")


def test_the_cache_is_used_when_nothing_else_holds_the_files(elsewhere):
    write_dataset(elsewhere / "cache" / "mnist", num_train=20, num_test=5, gz=False,
                  dotted=True)
    assert find_data_root() == str(elsewhere / "cache" / "mnist")


def test_a_folder_missing_one_file_does_not_count(elsewhere):
    folder, _ = write_dataset(elsewhere / "work" / "data", num_train=20, num_test=5)
    os.remove(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
    assert not holds_dataset(folder)
    with pytest.raises(DataNotFoundError) as info:
        find_data_root()
    message = str(info.value)
    for folder in search_path():
        assert folder in message
    assert "python -m mnistlab.download" in message


def test_the_checkout_data_is_found_only_from_a_checkout():
    package_dir = os.path.dirname(os.path.abspath(data_home.__file__))
    in_checkout = os.path.dirname(package_dir) == ROOT   # an editable install
    assert data_home.checkout_data_dir() == (MNIST_ROOT if in_checkout else None)
    assert holds_dataset(MNIST_ROOT)
