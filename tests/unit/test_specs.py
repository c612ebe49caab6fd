"""Source specs: bad ones fail at load time naming the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from integration_platform.cli import main
from integration_platform.specs.loader import SpecError, load_spec, load_specs, spec_paths

GOOD = """
source: shop
kind: rest
base_url: ${SHOP_URL}
auth: {type: api_key, in: header, name: X-Key, value: "${SHOP_KEY}"}
endpoints:
  orders:
    path: /orders
    records: data
    primary_key: id
    pagination: {type: offset, page_size: 50, total_path: total}
"""

ENV = {"SHOP_URL": "http://127.0.0.1:9", "SHOP_KEY": "k-123"}


def write(tmp_path: Path, text: str, name: str = "shop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_spec_loads_with_secrets_resolved_when_variables_are_set(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD), env=ENV)
    assert spec.base_url == "http://127.0.0.1:9"
    assert spec.auth.value.get_secret_value() == "k-123"  # type: ignore[union-attr]
    assert "k-123" not in repr(spec)


def test_unknown_key_is_named_with_its_path_when_a_typo_slips_in(tmp_path: Path) -> None:
    typo = GOOD.replace("page_size: 50", "page_sise: 50")
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, typo), env=ENV)
    message = str(caught.value)
    assert "shop.yaml" in message
    assert "endpoints.orders.pagination.offset.page_sise: unknown key" in message


def test_missing_variable_is_named_when_the_environment_lacks_it(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"base_url: environment variable SHOP_URL is not set"):
        load_spec(write(tmp_path, GOOD), env={"SHOP_KEY": "x"})


def test_literal_secret_is_refused_when_written_into_the_spec(tmp_path: Path) -> None:
    leaked = GOOD.replace('"${SHOP_KEY}"', "sk_live_123")
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, leaked), env=ENV)
    assert "auth.api_key.value: secrets must come from the environment" in str(caught.value)
    assert "sk_live_123" not in str(caught.value)


def test_unknown_pagination_type_lists_the_choices_when_misspelt(tmp_path: Path) -> None:
    wrong = GOOD.replace("type: offset", "type: offsett")
    with pytest.raises(SpecError, match=r"pagination: unknown type 'offsett'; expected one of"):
        load_spec(write(tmp_path, wrong), env=ENV)


def test_missing_required_key_is_reported_when_primary_key_is_absent(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"endpoints.orders.primary_key: required key is missing"):
        load_spec(write(tmp_path, GOOD.replace("    primary_key: id\n", "")), env=ENV)


def test_unknown_customer_field_is_refused_when_mapping_entities(tmp_path: Path) -> None:
    mapped = GOOD + "    entity:\n      customer: {e_mail: email}\n"
    with pytest.raises(SpecError, match=r"unknown customer field\(s\) \['e_mail'\]"):
        load_spec(write(tmp_path, mapped), env=ENV)


def test_rich_customer_mapping_loads_when_fields_use_formats_concat_and_identifiers(
    tmp_path: Path,
) -> None:
    mapped = (
        GOOD
        + """    entity:
      customer:
        first_name: given_name
        date_of_birth: {path: dob, format: ["%Y%m%d", "%d/%m/%Y"]}
        address_line: {concat: [street_number, street_name], sep: " "}
        identifiers: {national_id: soc_sec_id, tax_id: {path: tax.number}}
"""
    )
    customer = load_spec(write(tmp_path, mapped), env=ENV).endpoints["orders"].entity.customer
    assert customer is not None
    assert customer.fields["first_name"].paths == ["given_name"]
    assert customer.fields["date_of_birth"].formats == ["%Y%m%d", "%d/%m/%Y"]
    assert customer.fields["address_line"].paths == ["street_number", "street_name"]
    assert {kind: source.paths for kind, source in customer.identifiers.items()} == {
        "national_id": ["soc_sec_id"],
        "tax_id": ["tax.number"],
    }


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            '{date_of_birth: {path: dob, format: "%Y-%Q-%d"}}',
            r"entity\.customer\.date_of_birth\.format: '%Y-%Q-%d' has unknown directive\(s\) %Q",
        ),
        (
            '{date_of_birth: {path: dob, format: "%Y"}}',
            r"date_of_birth\.format: '%Y' is not a date format \(it needs a year, month and day",
        ),
        (
            "{date_of_birth: {path: dob, format: [epoch, '%Y%m%d']}}",
            r"entity\.customer\.date_of_birth: epoch formats cannot be combined",
        ),
        (
            "{city: {path: town, format: epoch}}",
            r"entity\.customer: city: `format` applies to date_of_birth only",
        ),
        (
            "{address_line: {concat: [street]}}",
            r"address_line\.concat: List should have at least 2 items",
        ),
        (
            "{address_line: {path: street, concat: [number, street]}}",
            r"address_line: give either `path` \(one JSON path\) or `concat`",
        ),
        (
            "{address_line: [number, street]}",
            r"address_line: expected a JSON path \(address\.zip\), \{path: \.\.\., format",
        ),
        (
            "{address_line: {concat: [number, street], separator: '-'}}",
            r"address_line\.separator: unknown key",
        ),
        (
            "{identifiers: {email: contact}}",
            r"entity\.customer\.identifiers: identifier name 'email' is a canonical field",
        ),
        (
            "{identifiers: {National-ID: nid}}",
            r"identifiers: identifier name 'National-ID': use lowercase letters, digits and _",
        ),
        (
            "{identifiers: {national_id: 'a..b'}}",
            r"identifiers\.national_id\.path: String should match pattern",
        ),
    ],
)
def test_bad_customer_mapping_is_named_with_its_key_path_when_a_rich_form_is_wrong(
    tmp_path: Path, mapping: str, message: str
) -> None:
    mapped = GOOD + f"    entity:\n      customer: {mapping}\n"
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(write(tmp_path, mapped), env=ENV)
    assert "shop.yaml" in str(caught.value)


def test_yaml_syntax_error_gives_the_line_when_the_file_is_broken(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"line \d+, column \d+: not valid YAML"):
        load_spec(write(tmp_path, "source: [unclosed\n"), env=ENV)


@pytest.mark.parametrize(
    ("line", "quoted"),
    [
        ("auth: {type: bearer, token: ${SHOP_KEY}}", 'token: "${SHOP_KEY}"'),
        ("auth: {type: bearer,\n       token: ${SHOP_KEY:-k-1}}", 'token: "${SHOP_KEY:-k-1}"'),
        ("tags: [orders, ${SHOP_TAG}]", '"${SHOP_TAG}"'),
    ],
)
def test_yaml_error_says_to_quote_the_reference_when_a_flow_collection_holds_an_unquoted_one(
    tmp_path: Path, line: str, quoted: str
) -> None:
    spec = write(tmp_path, f"source: shop\nkind: rest\nbase_url: ${{SHOP_URL}}\n{line}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    message = str(caught.value)
    assert "not valid YAML (expected ','" in message, message
    assert message.endswith(f"must be quoted, e.g. {quoted}"), message


def test_yaml_error_gives_no_quoting_hint_when_the_problem_is_not_a_reference(
    tmp_path: Path,
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, "source: shop\nauth: {type: bearer, token: {a: 1}\n"))
    assert "not valid YAML" in str(caught.value)
    assert "quoted" not in str(caught.value)


def test_validate_prints_the_quoting_hint_when_an_auth_mapping_holds_unquoted_references(
    tmp_path: Path,
) -> None:
    broken = GOOD.replace('value: "${SHOP_KEY}"', "value: ${SHOP_KEY}")
    result = CliRunner().invoke(main, ["validate", str(write(tmp_path, broken))])
    assert result.exit_code == 1
    assert 'must be quoted, e.g. value: "${SHOP_KEY}"' in result.output, result.output


def test_references_stay_unresolved_when_loading_without_an_environment(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.base_url == "${SHOP_URL}"


def test_same_source_twice_is_an_error_when_two_files_declare_it(tmp_path: Path) -> None:
    files = [write(tmp_path, GOOD, "a.yaml"), write(tmp_path, GOOD, "b.yaml")]
    with pytest.raises(SpecError, match="already declared"):
        load_specs(files, env=ENV)


def test_sources_path_lists_files_and_folders_when_set(tmp_path: Path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    one, two = write(tmp_path, GOOD, "one.yaml"), write(folder, GOOD, "two.yml")
    assert spec_paths(f"{one}:{folder}") == [one, two]
    with pytest.raises(SpecError, match="no such file"):
        spec_paths(str(tmp_path / "absent"))


def test_shipped_sandbox_specs_all_validate_when_checked_by_the_cli() -> None:
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    for source in ("crm", "billing", "support", "analytics"):
        assert f"source {source}" in result.output


def test_cli_validate_fails_naming_the_problem_when_a_spec_is_bad(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("kind: rest", "kind: soap"))
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code != 0
    assert "kind" in result.output


GRAPHQL = """
source: desk
kind: graphql
base_url: ${SHOP_URL}
endpoints:
  tickets:
    query_file: tickets.graphql
    primary_key: id
    pagination: {type: relay, connection_path: tickets}
"""


def test_graphql_validation_is_on_unless_the_spec_turns_it_off(tmp_path: Path) -> None:
    (tmp_path / "tickets.graphql").write_text("{ tickets { nodes { id } } }")
    assert load_spec(write(tmp_path, GRAPHQL, "desk.yaml"), env=ENV).graphql_validate is True
    off = GRAPHQL.replace("kind: graphql\n", "kind: graphql\ngraphql_validate: false\n")
    assert load_spec(write(tmp_path, off, "desk.yaml"), env=ENV).graphql_validate is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("graphql_validate: sometimes", r"graphql_validate: Input should be a valid boolean"),
        ("graphql: {validate: false}", r"graphql: unknown key"),
    ],
)
def test_graphql_validate_setting_is_checked_when_misspelt_or_not_a_boolean(
    tmp_path: Path, change: str, message: str
) -> None:
    bad = GRAPHQL.replace("kind: graphql\n", f"kind: graphql\n{change}\n")
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, bad, "desk.yaml"), env=ENV)


def test_graphql_validate_is_refused_when_the_source_is_rest(tmp_path: Path) -> None:
    bad = GOOD.replace("kind: rest\n", "kind: rest\ngraphql_validate: false\n")
    with pytest.raises(SpecError, match="graphql_validate: only for kind: graphql"):
        load_spec(write(tmp_path, bad), env=ENV)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("  orders:", "  Orders:"), "endpoints: endpoint name 'Orders': use 1 to 63 lowercase"),
        (
            (
                "pagination: {type: offset, page_size: 50, total_path: total}",
                "pagination: {type: relay, connection_path: x}",
            ),
            "endpoints.orders.pagination: relay pagination is for kind: graphql",
        ),
        (
            (
                "    primary_key: id",
                "    primary_key: id\n    parent: {endpoint: nope, fields: {}}",
            ),
            "endpoints.orders.parent.endpoint: 'nope' is not an endpoint of this source",
        ),
    ],
)
def test_cli_validate_names_the_key_path_when_a_check_across_keys_fails(
    tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    bad = write(tmp_path, GOOD.replace(*change))
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 1
    assert f"✗ {bad}: {says}" in result.output, result.output
    assert ": : " not in result.output


def test_values_put_into_paths_queries_and_headers_are_kept_for_masking_when_resolved(
    tmp_path: Path,
) -> None:
    spec_text = GOOD.replace("path: /orders", "path: /t/${TENANT}/orders") + (
        '    params: {ref: "${REF}", limit: "${LIMIT:-50}"}\n'
        '    headers: {X-Account: "${ACCOUNT}"}\n'
    )
    env = {**ENV, "TENANT": "tenant-9f", "REF": "ref-77", "ACCOUNT": "acct-3"}
    spec = load_spec(write(tmp_path, spec_text), env=env)
    assert spec.endpoints["orders"].path == "/t/tenant-9f/orders"
    # The default is written in the spec, and base_url names where the API is: neither is hidden.
    assert set(spec.masked_values) == {"tenant-9f", "ref-77", "acct-3"}
