"""The declarative config schema (vertebra.runtime.schema): one declaration drives parsing, unknown-key
rejection, type and bound checks, defaults, monitor gating, cross-field checks and the description."""

import pytest
from vertebra.runtime.errors import ConfigError, MissingFieldsError, VertebraError
from vertebra.runtime.schema import Section, Variant, field, read_yaml


class Inner(Section):
    """An inner section."""

    gain = field(float, lo=0, hi=10, doc="a gain")
    count = field(int, default=3, lo=1, hi=5, doc="a count")


class Group(Section):
    """A monitor group."""

    enabled = field(bool, default=True, doc="false turns the group off")
    limit_ms = field(float, lo=0.0, lo_open=True, off=0.0, doc="the group's threshold")
    strict = field(bool, default=True, switch=True, doc="a monitor switch")


class Root(Section):
    """The root of a toy config."""

    name = field(str, pattern=r"[a-z]+", doc="a name")
    mode = field(str, default="a", choices={"a": "first", "b": "second"}, doc="a mode")
    inner = field(Inner, doc="nested")
    items = field(list, item=Inner, default=[], doc="a list of sections")
    vec = field(list, item=float, size=3, lo=-1, hi=1, default=[0, 0, 0], doc="a vector")
    table = field(dict, item=str, keys=("x", "y"), key_doc="an axis", choices=("on", "off"), default={}, doc="a table")
    group = field(Group, doc="a monitor group")
    extra = field(Inner, default=None, doc="an optional section")


def good():
    return {"name": "abc", "inner": {"gain": 2}, "group": {"limit_ms": 5}}


def test_a_valid_mapping_parses_with_defaults_and_conversions():
    r = Root.from_dict(good(), "toy.yaml")
    assert r.name == "abc" and r.mode == "a" and r.extra is None
    assert r.inner.gain == 2.0 and isinstance(r.inner.gain, float) and r.inner.count == 3
    assert r.vec == [0.0, 0.0, 0.0] and r.items == [] and r.table == {}
    assert r.group.enabled and r.group.limit_ms == 5.0 and r.group.strict
    assert r.file == "toy.yaml" and r.inner.config_path == "inner"
    assert r["name"] == "abc" and r.get("extra", "none") == "none"
    again = Root.from_dict(r.to_dict(), "copy.yaml")
    assert again == r and again is not r


def test_null_counts_as_absent():
    d = good() | {"mode": None, "items": None}
    r = Root.from_dict(d, "toy.yaml")
    assert r.mode == "a" and r.items == []


def test_unknown_keys_are_refused_listing_the_valid_ones():
    with pytest.raises(ConfigError) as ei:
        Root.from_dict(good() | {"nmae": "x"}, "toy.yaml")
    assert ei.value.field == "nmae"
    assert "a known field: extra, group, inner, items, mode, name, table, vec" in str(ei.value)
    d = good()
    d["inner"]["gian"] = 1
    with pytest.raises(ConfigError, match=r"field 'inner.gian': found 1; valid: a known field: count, gain"):
        Root.from_dict(d, "toy.yaml")


@pytest.mark.parametrize("path,value,field_path,valid", [
    (("inner", "gain"), 11, "inner.gain", "a finite number >= 0 and <= 10"),
    (("inner", "gain"), float("nan"), "inner.gain", "a finite number"),
    (("inner", "gain"), True, "inner.gain", "a finite number"),
    (("inner", "gain"), "fast", "inner.gain", "a finite number"),
    (("inner", "count"), 2.5, "inner.count", "an integer >= 1 and <= 5"),
    (("inner", "count"), 9, "inner.count", "an integer >= 1 and <= 5"),
    (("group", "limit_ms"), 0, "group.limit_ms", "a finite number > 0.0"),
    (("group", "enabled"), "no", "group.enabled", "true or false"),
    (("name",), "ABC", "name", "a non-empty string matching [a-z]+"),
    (("name",), "", "name", "a non-empty string"),
    (("mode",), "c", "mode", "a (first) or b (second)"),
    (("vec",), [0, 0], "vec", "a list of 3 finite numbers >= -1 and <= 1"),
    (("vec",), [0, 0, 2], "vec", "a list of 3 finite numbers >= -1 and <= 1"),
    (("table",), {"z": "on"}, "table.z", "an axis: x, y"),
    (("table",), {"x": "maybe"}, "table.x", "on or off"),
    (("inner",), [1, 2], "inner", "a mapping of fields: gain, count"),
])
def test_each_bad_value_names_its_field_the_value_and_what_is_valid(path, value, field_path, valid):
    d = good()
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as ei:
        Root.from_dict(d, "toy.yaml")
    e = ei.value
    assert e.file == "toy.yaml" and e.field == field_path and valid in e.valid
    assert str(e) == f"toy.yaml: field '{field_path}': found {e.found!r}; valid: {e.valid}"


def test_list_items_that_are_sections_are_named_by_index():
    d = good() | {"items": [{"gain": 1}, {"gain": -1}]}
    with pytest.raises(ConfigError) as ei:
        Root.from_dict(d, "toy.yaml")
    assert ei.value.field == "items[1].gain" and ei.value.found == -1


def test_missing_required_fields_are_collected_over_the_whole_file():
    with pytest.raises(MissingFieldsError) as ei:
        Root.from_dict({"inner": {}, "group": {}}, "toy.yaml")
    e = ei.value
    assert e.fields == ["name", "inner.gain", "group.limit_ms"]
    lines = str(e).splitlines()
    assert lines[0].startswith("toy.yaml: 3 required fields are missing") and "enabled: false" in lines[0]
    for path, line in zip(e.fields, lines[1:]):
        assert line.strip().startswith(f"field '{path}': found '<missing>'; valid: required: ")


def test_one_missing_field_is_a_plain_config_error_message():
    d = good()
    del d["name"]
    with pytest.raises(ConfigError) as ei:
        Root.from_dict(d, "toy.yaml")
    assert ei.value.field == "name" and "required" in ei.value.valid
    assert str(ei.value).startswith("toy.yaml: field 'name': found '<missing>'; valid: required: a non-empty string")


def test_a_monitor_group_is_off_only_by_enabled_false():
    d = good() | {"group": {"enabled": False}}
    r = Root.from_dict(d, "toy.yaml")
    assert r.group.limit_ms == 0.0  # the 'off' value, though no threshold was given
    assert r.disabled() == ["group"]  # the switch inside the disabled group is not listed again
    d = good() | {"group": {"enabled": False, "limit_ms": 5}}
    assert Root.from_dict(d, "toy.yaml").group.limit_ms == 0.0
    d = good() | {"group": {"limit_ms": 5, "strict": False}}
    r = Root.from_dict(d, "toy.yaml")
    assert r.disabled() == ["group.strict"]
    assert [(m.path, m.enabled) for m in r.monitors()] == [("group", True), ("group.strict", False)]
    assert Root.from_dict(good(), "toy.yaml").disabled() == []


def test_checks_run_after_parsing_children_first_with_the_context():
    seen = []

    class Leaf(Section):
        value = field(int)

        def check(self, context):
            context.append(("leaf", self.value))

    class Top(Section):
        leaves = field(list, item=Leaf)

        def check(self, context):
            context.append(("top", len(self.leaves)))
            if len(self.leaves) > 2:
                raise self.leaves[2].error("value", self.leaves[2].value, "at most 2 leaves")

    Top.from_dict({"leaves": [{"value": 1}, {"value": 2}]}, "t.yaml", context=seen)
    assert seen == [("leaf", 1), ("leaf", 2), ("top", 2)]
    with pytest.raises(ConfigError, match=r"t.yaml: field 'leaves\[2\].value': found 3; valid: at most 2 leaves"):
        Top.from_dict({"leaves": [{"value": 1}, {"value": 2}, {"value": 3}]}, "t.yaml", context=[])


def test_keyword_construction_is_validated_like_a_file():
    assert Inner(gain=1).gain == 1.0
    with pytest.raises(ConfigError) as ei:
        Inner(gain=-1)
    assert ei.value.file == "<Inner>" and ei.value.field == "gain"
    with pytest.raises(ConfigError, match="a known field: count, gain"):
        Inner(gain=1, gian=2)


class Alpha(Section):
    """Alpha."""

    speed_m_s = field(float, default=1.0, lo=0, hi=5, doc="speed")


class Beta(Section):
    """Beta."""

    port = field(str, doc="port")


KINDS = {"alpha": Alpha, "beta": Beta}


class Holder(Section):
    thing = field(Variant(lambda: KINDS, key="type", what="thing"), doc="a thing chosen by type")


def test_a_variant_parses_into_the_class_its_key_names():
    h = Holder.from_dict({"thing": {"type": "beta", "port": "eth0"}}, "v.yaml")
    assert isinstance(h.thing, Beta) and h.thing.port == "eth0" and h.thing["type"] == "beta"
    assert h.to_dict() == {"thing": {"type": "beta", "port": "eth0"}}
    assert isinstance(Holder.from_dict({"thing": {"type": "alpha"}}, "v.yaml").thing, Alpha)


def test_a_variant_refuses_unknown_names_listing_the_registered_ones():
    with pytest.raises(ConfigError) as ei:
        Holder.from_dict({"thing": {"type": "gamma"}}, "v.yaml")
    assert ei.value.field == "thing.type" and ei.value.valid == "a registered thing: alpha or beta"
    with pytest.raises(MissingFieldsError) as ei:
        Holder.from_dict({"thing": {"port": "x"}}, "v.yaml")
    assert ei.value.fields == ["thing.type"]
    with pytest.raises(ConfigError, match="field 'thing.speed_m_s'"):
        Holder.from_dict({"thing": {"type": "alpha", "speed_m_s": 9}}, "v.yaml")
    with pytest.raises(ConfigError, match="a known field: port"):
        Holder.from_dict({"thing": {"type": "beta", "port": "x", "speed_m_s": 1}}, "v.yaml")


def test_the_description_lists_every_field_and_the_monitors():
    rows = {r.path: r for r in Root.describe()}
    assert rows["inner.gain"].type == "float" and rows["inner.gain"].default == "required"
    assert rows["inner.gain"].valid == "a finite number >= 0 and <= 10" and rows["inner.gain"].doc == "a gain"
    assert rows["items[].count"].default == "default 3"
    assert rows["group.limit_ms"].default == "required while enabled"
    assert rows["extra"].default == "default null"
    assert "inner.gain" in Root.format_description()
    assert Root.monitor_list() == [("group", "A monitor group."), ("group.strict", "a monitor switch")]
    holder = {r.path for r in Holder.describe()}
    assert {"thing<alpha>.speed_m_s", "thing<beta>.port"} <= holder


def test_declarations_are_checked():
    with pytest.raises(TypeError, match="no default"):
        field(float, default=1.0, off=0.0)
    with pytest.raises(TypeError, match="'enabled' field"):
        type("NoEnabled", (Section,), {"limit": field(float, off=0.0)})
    with pytest.raises(TypeError, match="reserved"):
        type("Reserved", (Section,), {"file": field(str)})


def test_errors_share_one_base_class():
    assert issubclass(ConfigError, VertebraError) and issubclass(ConfigError, ValueError)
    assert issubclass(MissingFieldsError, ConfigError)
    e = ConfigError("f.yaml", "a.b", 3, "an integer")
    assert str(e) == "f.yaml: field 'a.b': found 3; valid: an integer"


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("gain: 1e-6\n")
    assert Inner.from_dict(read_yaml(p), p).gain == pytest.approx(1e-6)
    p.write_text("gain: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(p)
