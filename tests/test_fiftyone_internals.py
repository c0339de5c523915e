"""FiftyOne's private names that curator/fiftyone_internals.py relies on are still there, in the
shape it uses them, and nothing else in curator touches FiftyOne's private names.

These checks read FiftyOne's code and objects (no database is started): the behaviour of what is
written directly is checked against FiftyOne's own methods in tests/test_fiftyone_sync.py
(``test_samples_are_written_as_add_samples_writes_them``, the database port test) and
tests/test_fiftyone_similarity.py (``write_vectors``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import tomllib
import zlib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from packaging.requirements import Requirement

import fiftyone as fo
from curator import fiftyone_internals as internals

ROOT = Path(__file__).resolve().parents[1]
INTERNALS = ROOT / "curator" / "fiftyone_internals.py"
FIFTYONE = version("fiftyone")


def changed(name: str) -> str:
    return (f"FiftyOne {FIFTYONE} changed {name}, which curator/fiftyone_internals.py relies on:"
            " check that module against the new version before raising the pin in pyproject.toml")


def module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.fail(changed(f"the module {name}"))


def attr(owner, name: str):
    """``owner.name`` (``owner`` a module name or an object), failing with ``changed`` if missing."""
    obj = module(owner) if isinstance(owner, str) else owner
    where = owner if isinstance(owner, str) else getattr(owner, "__qualname__", repr(owner))
    if not hasattr(obj, name):
        pytest.fail(changed(f"{where}.{name} (gone)"))
    return getattr(obj, name)


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_installed_fiftyone_is_the_one_pinned():
    pin = next(Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if Requirement(d).name == "fiftyone")
    assert pin.specifier.contains(FIFTYONE), (
        f"FiftyOne {FIFTYONE} is installed, outside {pin} in pyproject.toml, the versions"
        " curator/fiftyone_internals.py was checked against: run this file on it, check that module,"
        " then raise the pin")
    assert pin.specifier.contains("1.22.1") and "<" in str(pin.specifier), \
        f"{pin}: keep an upper bound, and the version fiftyone_internals.py names (1.22.1) inside it"
    assert "FiftyOne 1.22.1" in internals.__doc__


# -- the database service -------------------------------------------------------------------------

def test_the_database_module_keeps_its_service_and_connection_settings():
    fod = module("fiftyone.core.odm.database")
    attr(fod, "_db_service")
    assert isinstance(attr(fod, "_connection_kwargs"), dict), changed("database._connection_kwargs (not a dict)")
    assert params(attr(fod, "_disconnect")) == [], changed("database._disconnect() (takes arguments)")
    source = inspect.getsource(attr(fod, "establish_db_conn"))
    for name in ("_db_service", "_connection_kwargs", internals.PORT_ENV):
        assert name in source, changed(f"how establish_db_conn uses {name}")
    assert attr(fod, "logger").name == internals.DATABASE_LOG, changed(f"the logger {internals.DATABASE_LOG}")


def test_the_handles_dropped_on_leaving_a_database_are_there():
    instances = attr(attr("fiftyone.core.dataset", "Dataset"), "_instances")
    assert callable(getattr(instances, "clear", None)), changed("Dataset._instances (no clear())")
    attr("fiftyone.factory.repo_factory", "_db")
    repos = attr(attr("fiftyone.factory.repo_factory", "RepositoryFactory"), "repos")
    assert isinstance(repos, dict), changed("RepositoryFactory.repos (not a dict)")


def test_the_database_service_can_be_subclassed_as_curator_does():
    fos = module("fiftyone.core.service")
    service, multi = attr(fos, "DatabaseService"), attr(fos, "MultiClientService")
    assert issubclass(service, multi) and issubclass(multi, attr(fos, "Service")), changed("DatabaseService's bases")
    assert params(service.__init__) == ["self"], changed("DatabaseService.__init__ (takes arguments)")
    for name in ("start", "stop"):
        assert params(getattr(fos.Service, name)) == ["self"], changed(f"Service.{name}")
    for name in ("port", "command", "_service_args"):
        assert isinstance(inspect.getattr_static(service, name, None), property), changed(f"DatabaseService.{name}")
    assert inspect.getattr_static(multi, "attached", None) is False, changed("MultiClientService.attached")
    assert "self.child = " in inspect.getsource(fos.Service.__init__), changed("Service.child")
    start = inspect.getsource(multi.start)
    assert "self.attached = True" in start and "self.child = process" in start, \
        changed("how MultiClientService.start joins")
    bare = object.__new__(service)  # no __init__: nothing starts
    bare._disabled = True  # nor stops, when it is collected
    assert bare._service_args == ["--51-service", "db", "--multi"], changed("DatabaseService._service_args")
    assert '"--dbpath"' in inspect.getsource(service.command.fget), changed("the mongod command (its --dbpath)")


def test_the_service_process_helpers_take_what_curator_passes():
    fosu = module("fiftyone.service.util")
    assert params(attr(fosu, "find_processes_by_args")) == ["args"], changed("service.util.find_processes_by_args")
    assert params(attr(fosu, "send_ipc_message")) == ["process", "message"], changed("service.util.send_ipc_message")


def test_dbpath_reads_a_mongod_command_line(tmp_path):
    assert internals._dbpath(["mongod", "--dbpath", str(tmp_path), "--port", "0"]) == str(tmp_path.resolve())
    assert internals._dbpath(["mongod", "--dbpath"]) is None


# -- documents written directly -------------------------------------------------------------------

def test_labels_are_stored_as_curator_writes_them():
    for ours, theirs in [(internals.label_doc("a"), fo.Classification(label="a")),
                         (internals.label_doc("a", 0.5), fo.Classification(label="a", confidence=0.5))]:
        assert sorted(ours) == sorted(theirs.to_dict()), changed("how a Classification is stored")
        assert internals.label_object(ours) == fo.Classification.from_dict(ours)
    many = internals.labels_doc([internals.label_doc("a")])
    stored = fo.Classifications(classifications=[fo.Classification(label="a")]).to_dict()
    assert sorted(many) == sorted(stored), changed("how a Classifications is stored")
    assert isinstance(internals.label_object(many), fo.Classifications)


def test_a_sample_document_has_the_fields_curator_writes():
    sample = module("fiftyone.core.odm.sample")
    mixins = module("fiftyone.core.odm.mixins")
    fields = set(mixins.get_default_fields(attr(sample, "DatasetSampleDocument"), include_private=True))
    # what insert_image_samples writes (created_at... and _media_type, _rand, _dataset_id), and
    # what add_samples leaves out for an image (metadata, media_reference: None)
    assert fields == {"id", "filepath", "tags", "metadata", "media_reference", "created_at", "last_modified_at",
                      "_media_type", "_rand", "_dataset_id"}, \
        changed(f"a sample's default fields (now {sorted(fields)})")
    rand = attr(sample, "_generate_rand")
    assert params(rand) == [] and 0.999 <= rand() <= 1, changed("odm.sample._generate_rand")


def test_a_dataset_keeps_its_document_and_sample_collection():
    dataset = attr("fiftyone.core.dataset", "Dataset")
    assert isinstance(inspect.getattr_static(dataset, "_sample_collection", None), property), \
        changed("Dataset._sample_collection")
    assert "self._doc = " in inspect.getsource(dataset), changed("Dataset._doc")
    doc = attr("fiftyone.core.odm", "DatasetDocument")
    for field in ("saved_views", "last_modified_at"):
        assert field in doc._fields, changed(f"DatasetDocument.{field}")
    for method in ("reload", "get_saved_views", "save"):
        attr(doc, method)
    assert "virtual" in params(attr("fiftyone.core.odm.document", "Document")._update), \
        changed("Document.save(virtual=True)")


def test_a_vector_is_stored_as_write_vectors_stores_it():
    utils = module("fiftyone.core.utils")
    vector = np.arange(4, dtype=np.float32)
    stored = attr(utils, "serialize_numpy_array")(vector)
    assert np.array_equal(np.load(__import__("io").BytesIO(zlib.decompress(stored))), vector), \
        changed("how a VectorField is stored (zlib of np.save)")
    header_and_bytes = zlib.decompress(stored)
    assert np.array_equal(attr(utils, "deserialize_numpy_array")(zlib.compress(header_and_bytes, 0)), vector), \
        changed("how a VectorField is read (zlib of np.save)")
    assert "serialize_numpy_array" in inspect.getsource(fo.VectorField.to_mongo), changed("VectorField.to_mongo")


def test_saved_views_are_documents_curator_can_write():
    views = attr("fiftyone.core.odm", "SavedViewDocument")
    wanted = {"dataset_id", "name", "slug", "description", "view_stages", "created_at", "last_modified_at"}
    assert wanted <= set(views._fields), changed(f"SavedViewDocument's fields (now {sorted(views._fields)})")
    assert inspect.getattr_static(views, "objects", None) is not None, changed("SavedViewDocument.objects")
    serialize = attr(attr("fiftyone.core.view", "DatasetView"), "_serialize")
    assert "include_uuids" in params(serialize), changed("DatasetView._serialize(include_uuids=...)")
    handle = attr("fiftyone.core.dataset", "_handle_delete_generated_saved_view")
    assert params(handle) == ["dataset", "view_doc"], changed("dataset._handle_delete_generated_saved_view")


# -- the app server -------------------------------------------------------------------------------

def test_the_app_server_is_started_with_the_arguments_curator_looks_for():
    fos = module("fiftyone.core.service")
    server = attr(fos, "ServerService")
    args = fos.Service._service_args.fget(SimpleNamespace(service_name=server.service_name))
    assert tuple(args) == internals.APP_SERVER_ARGS, changed("the app server's arguments (ServerService)")
    assert attr(internals.SESSION_LOG, "logger").name == internals.SESSION_LOG, \
        changed(f"the logger {internals.SESSION_LOG}")


def test_is_app_server_reads_a_command_line():
    assert internals.is_app_server(SimpleNamespace(cmdline=lambda: ["python", "main.py", "--51-service", "server"]))
    assert not internals.is_app_server(SimpleNamespace(cmdline=lambda: ["python", "--51-service", "db", "--multi"]))


# -- nobody else ----------------------------------------------------------------------------------

PRIVATE = [r"\._db_service\b", r"\._connection_kwargs\b", r"\._instances\b", r"\._disconnect\b", r"\brepo_factory\b",
           r"\bRepositoryFactory\b", r"\._sample_collection\b", r"\._doc\b", r"\._serialize\b", r"\._service_args\b",
           r"_handle_delete_generated_saved_view", r"_generate_rand", r"\bSavedViewDocument\b",
           r"\bfiftyone\.(core\.(odm|service|session)|service|factory)\b", r"FIFTYONE_PRIVATE_", r"--51-service",
           r"""["']_(cls|rand|media_type|dataset_id)["']""", r"\b(dataset|view|sample|session)\._[a-z]\w*"]


def fiftyone_names(tree: ast.Module) -> set[str]:
    """The names a module binds to FiftyOne's modules and objects by importing them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name.split(".")[0]) for a in node.names if a.name.split(".")[0] == "fiftyone"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fiftyone":
            names |= {a.asname or a.name for a in node.names}
    return names


def private_uses(path: Path) -> list[str]:
    text = path.read_text()
    tree = ast.parse(text)
    found = [f"{path.name}:{n + 1}: {line.strip()}" for n, line in enumerate(text.splitlines())
             if any(re.search(p, line) for p in PRIVATE)]
    names = fiftyone_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fiftyone":
            found += [f"{path.name}:{node.lineno}: from {node.module} import {a.name}"
                      for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in names:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return list(dict.fromkeys(found))


def test_nothing_but_fiftyone_internals_touches_fiftyone_private_names():
    found = [use for path in sorted((ROOT / "curator").rglob("*.py")) if path != INTERNALS
             for use in private_uses(path)]
    assert not found, ("FiftyOne's private names belong in curator/fiftyone_internals.py (listed in its docstring,"
                       " checked by this file), not:\n" + "\n".join(found))


def test_the_check_finds_what_internals_does():
    """The patterns above see each kind of use in fiftyone_internals.py (so they would elsewhere)."""
    uses = "\n".join(private_uses(INTERNALS))
    for name in ("_db_service", "_connection_kwargs", "_instances", "repo_factory", "_sample_collection", "_doc",
                 "_serialize", "_generate_rand", "SavedViewDocument", "--51-service", "FIFTYONE_PRIVATE_", '"_cls"'):
        assert name in uses, name
