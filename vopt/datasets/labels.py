"""Ground-truth class labels when the image data has them. Three common layouts are recognized:

- a labels file next to the images (`labels.csv`, `labels.tsv` or `labels.txt`, or the file named by the
recipe's
  `labels:` key): one `file_name,class_index` (comma, tab or space) per line; a header line is skipped;
- a class list (`classes.txt`, `synsets.txt` or `synset_words.txt`): one class per line, as
`index<TAB>synset<TAB>name`,
  `synset name ...` or just `name` (index = line number). An image's class is the folder it is in
  (`<class>/xxx.jpg`) or the synset before the first `_` of its name (`n01443537_goldfish.JPEG`);
- an ImageFolder tree without a class list: `<class>/xxx.jpg`, class index = the sorted order of the folders.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vopt.errors import RecipeError

LABEL_FILES = ("labels.csv", "labels.tsv", "labels.txt")
CLASS_FILES = ("classes.txt", "synsets.txt", "synset_words.txt")
_SPLIT = re.compile(r"[,\t ]+")


@dataclass
class Labels:
    """Class index per image file, and where it came from."""

    by_file: dict[Path, int]
    source: str
    classes: list[str] = field(default_factory=list)

    def of(self, files: list[Path]) -> list[int] | None:
        """Labels of these files in order; None unless every one has a label."""
        try:
            return [self.by_file[f] for f in files]
        except KeyError:
            return None

    def name(self, index: int) -> str:
        return self.classes[index] if 0 <= index < len(self.classes) else str(index)


def find_labels(
    data: str | list[str] | None, files: list[Path], labels_file: str | None = None, key: str = "labels"
) -> Labels | None:
    """Labels for `files` (images under the `data` folders), or None when the data has none we recognize.
    `labels_file` names a file-to-index mapping explicitly ("none" turns labels off)."""
    if data is None or labels_file == "none":
        return None
    roots = [Path(s).expanduser() for s in ([data] if isinstance(data, str) else data)]
    by_file: dict[Path, int] = {}
    sources: list[str] = []
    classes: list[str] = []
    for root in roots:
        if not root.is_dir():
            continue
        mine = [f for f in files if _under(f, root)]
        found = _labels_for_root(root, mine, labels_file, key)
        if found is None:
            continue
        by_file.update(found.by_file)
        sources.append(found.source)
        classes = classes or found.classes
    if not by_file:
        if labels_file:
            raise RecipeError(
                f"{key}: {labels_file} labels none of the images under {', '.join(map(str, roots))}"
            )
        return None
    return Labels(by_file, "; ".join(sources), classes)


def label_files(
    files: list[Path], labels_file: str | None = None, data: str | list[str] | None = None
) -> list[Path]:
    """The files find_labels may read: an explicit labels file, and the labels and class lists (LABEL_FILES,
    CLASS_FILES) of each data root (`data`, as the recipe gives it), or, without `data`, of every folder from
    each image's own up to the folder that holds them all (a data root is one of those). Their content goes
    into the cache keys of the steps that use labels."""
    found: list[Path] = []
    if labels_file and labels_file != "none":
        explicit = Path(labels_file).expanduser()
        if explicit.is_file():
            found.append(explicit)
    folders: set[Path] = set()
    if data is not None:
        folders = {Path(d).expanduser() for d in ([data] if isinstance(data, str) else data)}
    elif files:
        parents = sorted({f.parent for f in files})
        top = Path(os.path.commonpath([str(p) for p in parents]))
        for folder in parents:
            while folder not in folders:
                folders.add(folder)
                if folder == top or folder == folder.parent:
                    break
                folder = folder.parent
    for folder in sorted(folders):
        found += [folder / n for n in (*LABEL_FILES, *CLASS_FILES) if (folder / n).is_file()]
    return list(dict.fromkeys(found))


def labels_key(data: str | list[str] | None, labels_file: str | None = None) -> list[str]:
    """Cache-key material for the labels of `data`: each label file's path and content hash."""
    from vopt.core.filehash import content_hashes

    if labels_file == "none":
        return []
    files = label_files([], labels_file, data) if data is not None or labels_file else []
    return [f"{f}|{sha}" for f, sha in zip(files, content_hashes(files), strict=True)]


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _labels_for_root(root: Path, files: list[Path], labels_file: str | None, key: str) -> Labels | None:
    explicit = Path(labels_file).expanduser() if labels_file else None
    if explicit is not None and not explicit.is_file():
        raise RecipeError(f"{key}: labels file not found: {labels_file}")
    class_file = next((root / n for n in CLASS_FILES if (root / n).is_file()), None)
    classes, index = read_class_list(class_file) if class_file else ([], {})
    label_file = explicit or next((root / n for n in LABEL_FILES if (root / n).is_file()), None)
    if label_file is not None:
        table = read_labels_file(label_file, index, key)
        by_file = {}
        for f in files:
            rel = f.relative_to(root).as_posix()
            for name in (rel, f.name, f.stem):
                if name in table:
                    by_file[f] = table[name]
                    break
        return Labels(by_file, f"labels file {label_file}", classes)
    if class_file is not None:
        by_file = {}
        for f in files:
            parts = f.relative_to(root).parts
            for candidate in ((parts[0],) if len(parts) > 1 else ()) + (f.stem.split("_", 1)[0],):
                if candidate in index:
                    by_file[f] = index[candidate]
                    break
        how = (
            "class folders"
            if any(len(f.relative_to(root).parts) > 1 for f in by_file)
            else "synset prefix of the file name"
        )
        return Labels(by_file, f"{class_file.name} in {root} ({how})", classes)
    dirs = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) == 2})
    if len(dirs) >= 2 and all(len(f.relative_to(root).parts) == 2 for f in files):
        index = {d: i for i, d in enumerate(dirs)}
        by_file = {f: index[f.relative_to(root).parts[0]] for f in files}
        return Labels(by_file, f"ImageFolder {root} ({len(dirs)} class folders, index = sorted order)", dirs)
    return None


def read_class_list(path: Path) -> tuple[list[str], dict[str, int]]:
    """Class names by index, and every key (synset, name, index string) that names a class."""
    names: list[str] = []
    index: dict[str, int] = {}
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        cols = line.split("\t") if "\t" in line else line.split(None, 1)
        if len(cols) >= 2 and cols[0].isdigit():  # index<TAB>synset<TAB>name, or index name
            idx, keys = int(cols[0]), cols[1:]
        elif len(cols) >= 2 and re.fullmatch(
            r"n\d{8}", cols[0]
        ):  # synset_words.txt: "n01440764 tench, Tinca tinca"
            idx, keys = i, cols
        else:
            idx, keys = i, [line]
        name = keys[-1]
        while len(names) <= idx:
            names.append(str(len(names)))
        names[idx] = name
        for k in keys:
            index.setdefault(k.strip(), idx)
            index.setdefault(k.split(",")[0].strip(), idx)
    return names, index


def read_labels_file(path: Path, class_index: dict[str, int], key: str) -> dict[str, int]:
    """`file_name <sep> class` lines; the class is an index, or a name from the class list."""
    table: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = _SPLIT.split(line, maxsplit=1)
        if len(cols) != 2:
            raise RecipeError(f"{path}:{n}: {key}: expected `file_name,class_index`, got '{line[:80]}'")
        name, label = cols[0].strip(), cols[1].strip()
        if label.lstrip("-").isdigit():
            table[name] = int(label)
        elif label in class_index:
            table[name] = class_index[label]
        elif n == 1:
            continue  # a header line such as "file,label"
        else:
            raise RecipeError(
                f"{path}:{n}: {key}: class '{label}' is neither an index nor a class in the class list"
            )
    return table
