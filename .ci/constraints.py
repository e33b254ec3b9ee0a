"""The constraints file: the installed versions of the project's dependency closure (pyproject.toml
dependencies plus the extras named), from the current environment: `python .ci/constraints.py
pyproject.toml test > .ci/constraints.txt`."""
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = set(sys.argv[2:])
todo = [Requirement(r) for r in project["dependencies"]]
for e in extras:
    todo += [Requirement(r) for r in project.get("optional-dependencies", {}).get(e, [])]
seen = {}
while todo:
    req = todo.pop()
    name = canonicalize_name(req.name)
    if name in seen:
        continue
    try:
        d = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        continue
    seen[name] = (d.metadata["Name"], d.version)
    for r in d.requires or []:
        sub = Requirement(r)
        if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in req.extras or {""}):
            todo.append(sub)
for name in sorted(seen):
    print(f"{seen[name][0]}=={seen[name][1]}")
