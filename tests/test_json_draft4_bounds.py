"""Draft-04's boolean exclusiveMinimum/exclusiveMaximum: `true` makes minimum/maximum exclusive, `false`
changes nothing. decc read the boolean as a number (True == 1), so `{"minimum": 3, "exclusiveMinimum":
true}` accepted 3. Oracle: jsonschema's Draft4Validator on drawn numbers."""

from __future__ import annotations

import json

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from decc.grammars.json.json_schema import compile_json_schema

DRAFT4 = "http://json-schema.org/draft-04/schema#"


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["integer", "number"]),
    lo=st.one_of(st.none(), st.integers(-5, 5)),
    hi=st.one_of(st.none(), st.integers(-5, 5)),
    lo_x=st.one_of(st.none(), st.booleans()),
    hi_x=st.one_of(st.none(), st.booleans()),
    in_all_of=st.booleans(),
)
def test_boolean_exclusive_bounds_agree_with_draft4(kind, lo, hi, lo_x, hi_x, in_all_of) -> None:
    bounds: dict = {}
    if lo is not None:
        bounds["minimum"] = lo
    if hi is not None:
        bounds["maximum"] = hi
    if lo_x is not None and lo is not None:  # draft-04: the flag needs its bound
        bounds["exclusiveMinimum"] = lo_x
    if hi_x is not None and hi is not None:
        bounds["exclusiveMaximum"] = hi_x
    schema = {"$schema": DRAFT4, "type": kind, **bounds}
    if in_all_of:  # the allOf merge reads the bounds too
        schema = {"$schema": DRAFT4, "allOf": [{"type": kind}, bounds]}
    if (lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_x or hi_x)))) or (
        kind == "integer" and lo is not None and hi is not None and lo_x and hi_x and hi - lo < 2
    ):
        return  # no value at all: refused as a schema accepting nothing
    dfa = compile_json_schema(schema)
    check = jsonschema.Draft4Validator(schema)
    for v in [x / 2 for x in range(-14, 15)]:
        value = int(v) if kind == "integer" and v.is_integer() else v
        if kind == "integer" and not v.is_integer():
            continue
        assert dfa.accepts(json.dumps(value).encode()) == check.is_valid(value), (schema, value)
