#!/usr/bin/env python3
"""Reference CART trees from scikit-learn for test/methods/rules/tree.test.ts.

Fits sklearn.tree.DecisionTreeClassifier (Gini, best splitter) on iris, wine and breast cancer with the settings
below and writes each tree's nodes (feature, threshold, children, class counts) and its predictions on the data to
fixtures/rules/sklearn-trees.json. Run: /usr/bin/python3 scripts/make-tree-fixture.py (Debian python3-sklearn).
The tests read the JSON only; they never need scikit-learn.
"""
import json
import os

import sklearn
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.tree import DecisionTreeClassifier

CASES = [
    ("iris", load_iris, {"max_depth": 3}),
    ("wine", load_wine, {"max_depth": 4}),
    ("breast-cancer", load_breast_cancer, {"max_depth": 4, "min_samples_leaf": 5}),
]


def tree_json(clf):
    t = clf.tree_
    nodes = []
    for i in range(t.node_count):
        leaf = t.children_left[i] == -1
        nodes.append({
            "feature": None if leaf else int(t.feature[i]),
            "threshold": None if leaf else float(t.threshold[i]),
            "left": None if leaf else int(t.children_left[i]),
            "right": None if leaf else int(t.children_right[i]),
            "samples": int(t.n_node_samples[i]),
            # Class counts (sklearn >= 1.4 stores fractions; 1.2 stores weighted counts).
            "counts": [float(v) for v in t.value[i][0]],
        })
    return nodes


def main():
    out = {"sklearn": sklearn.__version__, "cases": []}
    for name, load, params in CASES:
        data = load()
        clf = DecisionTreeClassifier(random_state=0, **params).fit(data.data, data.target)
        out["cases"].append({
            "dataset": name,
            "params": params,
            "depth": int(clf.get_depth()),
            "leaves": int(clf.get_n_leaves()),
            "nodes": tree_json(clf),
            "predictions": [int(p) for p in clf.predict(data.data)],
        })
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "rules", "sklearn-trees.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
