"""Checks of the harness's PactumJS jsonLike semantics (run: python3 -m unittest)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from run_compliance import json_like  # noqa: E402


class JsonLike(unittest.TestCase):
    def test_extra_properties_allowed(self):
        self.assertIsNone(json_like({"a": 1, "b": 2}, {"a": 1}))

    def test_missing_property_named(self):
        self.assertIn("$.b: missing", json_like({"a": 1}, {"a": 1, "b": 2}))

    def test_arrays_ignore_order(self):
        self.assertIsNone(json_like([3, {"x": 1, "y": 2}, 1], [{"x": 1}, 3]))

    def test_array_elements_match_distinct_actuals(self):
        self.assertIsNotNone(json_like([{"x": 1}], [{"x": 1}, {"x": 1}]))
        self.assertIsNone(json_like([{"x": 1, "y": 1}, {"x": 1}], [{"x": 1}, {"x": 1, "y": 1}]))

    def test_booleans_are_not_numbers(self):
        self.assertIsNotNone(json_like({"a": True}, {"a": 1}))
        self.assertIsNotNone(json_like({"a": 1}, {"a": True}))

    def test_nested_difference_located(self):
        msg = json_like({"e": [{"r": {"n": "A"}}]}, {"e": [{"r": {"n": "B"}}]})
        self.assertIn('$.e[0]', msg)
        self.assertIn('expected "B", got "A"', msg)


if __name__ == "__main__":
    unittest.main()
