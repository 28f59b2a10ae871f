"""The Salesforce sandbox answers simple-salesforce, Salesforce's own Python client."""

from __future__ import annotations

import re
import ssl
import uuid
from typing import Any

import httpx
import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from adapters.sandbox.salesforce import SalesforceSandbox


def _body(exc: BaseException) -> Any:
    """The decoded error body simple-salesforce keeps (its stubs type it loosely)."""
    return getattr(exc, "content")  # noqa: B009


def _tls(sandbox: SalesforceSandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sandbox.ca_file)


SF_ID = re.compile(r"^[0-9A-Za-z]{18}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


def _deal(sf: Any) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    account = sf.Account.create({"Name": f"Acme {tag}", "Contact_Email__c": "ap@acme.example"})
    product = sf.Product2.create({"Name": "Pro plan", "ProductCode": f"PRO-{tag}"})
    opp = sf.Opportunity.create(
        {
            "Name": f"Deal {tag}",
            "AccountId": account["id"],
            "StageName": "Negotiation/Review",
            "CloseDate": "2026-12-15",
            "Amount": 1200.50,
            "CurrencyIsoCode": "EUR",
            "Billing_Interval__c": "Annual",
            "Payment_Terms__c": "NET30",
        }
    )
    line = sf.OpportunityLineItem.create(
        {
            "OpportunityId": opp["id"],
            "Product2Id": product["id"],
            "Quantity": 2,
            "UnitPrice": 600.25,
        }
    )
    return {
        "tag": tag,
        "account": account["id"],
        "product": product["id"],
        "opp": opp["id"],
        "line": line["id"],
    }


def test_create_answers_ids_with_the_right_key_prefixes(sf: Any) -> None:
    ids = _deal(sf)
    for key, prefix in [("account", "001"), ("product", "01t"), ("opp", "006"), ("line", "00k")]:
        assert SF_ID.match(ids[key]) and ids[key].startswith(prefix)


def test_update_stage_derives_closed_and_won(sf: Any) -> None:
    ids = _deal(sf)
    before = sf.Opportunity.get(ids["opp"])
    assert (before["IsClosed"], before["IsWon"]) == (False, False)
    assert sf.Opportunity.update(ids["opp"], {"StageName": "Closed Won"}) == 204
    after = sf.Opportunity.get(ids["opp"])
    assert (after["IsClosed"], after["IsWon"]) == (True, True)
    assert STAMP.match(after["SystemModstamp"]) and STAMP.match(after["CreatedDate"])
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["IsDeleted"] is False
    assert after["attributes"] == {
        "type": "Opportunity",
        "url": f"/services/data/v60.0/sobjects/Opportunity/{ids['opp']}",
    }


def test_line_items_total_and_parent_fields_in_query(sf: Any) -> None:
    ids = _deal(sf)
    result = sf.query(
        "SELECT Id, Quantity, UnitPrice, TotalPrice, Product2.ProductCode, Opportunity.Name "
        f"FROM OpportunityLineItem WHERE OpportunityId = '{ids['opp']}'"
    )
    assert result["totalSize"] == 1 and result["done"] is True
    (line,) = result["records"]
    assert line["TotalPrice"] == 1200.5
    assert line["Product2"]["ProductCode"] == f"PRO-{ids['tag']}"
    assert line["Opportunity"]["Name"] == f"Deal {ids['tag']}"
    assert line["attributes"]["type"] == "OpportunityLineItem"


def test_query_all_follows_next_records_url_across_pages(
    sf_sandbox: SalesforceSandbox, sf: Any
) -> None:
    page_size = sf_sandbox.page_size
    tag = uuid.uuid4().hex[:8]
    count = page_size * 2 + 17
    for i in range(count):
        sf.Product2.create({"Name": f"bulk-{tag}-{i:04d}", "ProductCode": f"B{i}"})
    soql = f"SELECT Id, Name FROM Product2 WHERE Name LIKE 'bulk-{tag}-%' ORDER BY Name"
    first = sf.query(soql)
    assert first["done"] is False and first["totalSize"] == count
    assert len(first["records"]) == page_size
    assert re.fullmatch(
        rf"/services/data/v60\.0/query/01g[0-9A-Za-z]{{15}}-{page_size}", first["nextRecordsUrl"]
    )
    everything = sf.query_all(soql)
    names = [r["Name"] for r in everything["records"]]
    assert names == [f"bulk-{tag}-{i:04d}" for i in range(count)]
    assert everything["totalSize"] == count


def test_limits_and_the_api_usage_header(sf: Any) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    usage = sf.api_usage["api-usage"]
    assert usage.total == 15000
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - usage.used


def test_errors_arrive_as_salesforce_error_lists(sf: Any) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad_soql:
        sf.query("SELECT Id FROM Opportunity WHERE")
    assert _body(bad_soql.value)[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as bad_field:
        sf.query("SELECT Nope FROM Opportunity")
    assert _body(bad_field.value)[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Opportunity.create({"Name": "no stage"})
    assert _body(missing.value)[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert _body(missing.value)[0]["fields"] == ["StageName", "CloseDate"]
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Account.get("001Wz0000000999ZZZ")
    assert _body(gone.value)[0]["errorCode"] == "NOT_FOUND"


def test_bad_token_is_invalid_session(sf_sandbox: SalesforceSandbox, sf: Any) -> None:
    stranger = Salesforce(session_id="00Dnope", instance_url=sf_sandbox.url, version="60.0")
    with pytest.raises(SalesforceExpiredSession) as info:
        stranger.limits()
    assert _body(info.value) == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]


def test_faults_rate_limit_then_fail(sf_sandbox: SalesforceSandbox, sf: Any) -> None:
    httpx.post(
        f"{sf_sandbox.url}/_sandbox/faults",
        json={"rate_limit_next": 1, "fail_next": 1},
        verify=_tls(sf_sandbox),
    ).raise_for_status()
    with pytest.raises(SalesforceRefusedRequest) as limited:
        sf.limits()
    assert limited.value.status == 403
    assert _body(limited.value)[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.limits()
    assert failed.value.status == 503
    assert sf.limits()["DailyApiRequests"]["Max"] == 15000


def test_delete_hides_from_query_but_not_query_all_deleted(sf: Any) -> None:
    ids = _deal(sf)
    assert sf.Opportunity.delete(ids["opp"]) == 204
    soql = f"SELECT Id, IsDeleted FROM Opportunity WHERE Id = '{ids['opp']}'"
    assert sf.query(soql)["totalSize"] == 0
    deleted = sf.query_all(soql, include_deleted=True)["records"]
    assert [r["IsDeleted"] for r in deleted] == [True]
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Opportunity.get(ids["opp"])
    assert _body(info.value)[0]["errorCode"] == "ENTITY_IS_DELETED"
    lines = f"SELECT Id FROM OpportunityLineItem WHERE OpportunityId = '{ids['opp']}'"
    assert sf.query(lines)["totalSize"] == 0


def test_touch_bumps_modstamp_without_a_change(sf_sandbox: SalesforceSandbox, sf: Any) -> None:
    ids = _deal(sf)
    before = sf.Opportunity.get(ids["opp"])
    touched = httpx.post(
        f"{sf_sandbox.url}/_sandbox/touch/{ids['opp']}", verify=_tls(sf_sandbox)
    ).json()
    after = sf.Opportunity.get(ids["opp"])
    assert after["SystemModstamp"] == touched["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == before["LastModifiedDate"]
    assert {k: v for k, v in after.items() if k != "SystemModstamp"} == {
        k: v for k, v in before.items() if k != "SystemModstamp"
    }


def test_oauth_token_grants_and_every_response_carries_limit_info(
    sf_sandbox: SalesforceSandbox,
) -> None:
    with httpx.Client(base_url=sf_sandbox.url, verify=_tls(sf_sandbox)) as client:
        token = client.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sf_sandbox.client_id,
                "client_secret": sf_sandbox.client_secret,
            },
        ).json()
        assert token["instance_url"] == sf_sandbox.url and token["token_type"] == "Bearer"
        ok = client.get(
            "/services/data/v62.0/limits/",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert ok.status_code == 200
        assert re.fullmatch(r"api-usage=\d+/15000", ok.headers["Sforce-Limit-Info"])
        password = client.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": sf_sandbox.client_id,
                "client_secret": sf_sandbox.client_secret,
                "username": sf_sandbox.username,
                "password": sf_sandbox.password,
            },
        )
        assert password.status_code == 200
        wrong = client.post(
            "/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        )
        assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
        for path in ("/services/data/v60.0/limits/", "/services/data/v49.0/limits/"):
            denied = client.get(path, headers={"Authorization": "Bearer nope"})
            assert denied.status_code in (401, 404)
            assert "Sforce-Limit-Info" in denied.headers
            assert isinstance(denied.json(), list)
        old = client.get(
            "/services/data/v49.0/limits/", headers={"Authorization": f"Bearer {sf_sandbox.token}"}
        )
        assert old.status_code == 404 and old.json()[0]["errorCode"] == "NOT_FOUND"


def test_sandbox_control_stats_and_bad_fault_settings(sf_sandbox: SalesforceSandbox) -> None:
    stats = httpx.get(f"{sf_sandbox.url}/_sandbox/stats", verify=_tls(sf_sandbox)).json()
    assert set(stats["records"]) == {
        "Account",
        "Product2",
        "Pricebook2",
        "PricebookEntry",
        "Opportunity",
        "OpportunityLineItem",
        "Task",
    }
    bad = httpx.post(
        f"{sf_sandbox.url}/_sandbox/faults", json={"explode": 1}, verify=_tls(sf_sandbox)
    )
    assert bad.status_code == 400 and "explode" in bad.json()["error"]


def test_stop_is_safe_twice() -> None:
    sandbox = SalesforceSandbox()
    sandbox.stop()
    sandbox.stop()
    assert "secret" not in repr(sandbox) and sandbox.token not in repr(sandbox)


def test_bad_writes_and_unknown_paths_answer_error_lists(sf_sandbox: SalesforceSandbox) -> None:
    headers = {"Authorization": f"Bearer {sf_sandbox.token}"}
    base = "/services/data/v60.0/sobjects"
    with httpx.Client(base_url=sf_sandbox.url, verify=_tls(sf_sandbox), headers=headers) as c:
        cases = [
            (c.post(f"{base}/Account/", content=b"{nope"), 400, "JSON_PARSER_ERROR"),
            (c.post(f"{base}/Account/", json={"Name": "x", "Colour": 1}), 400, "INVALID_FIELD"),
            (
                c.post(f"{base}/Account/", json={"Name": "x", "CreatedDate": "2020-01-01"}),
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
            ),
            (
                c.post(
                    f"{base}/Opportunity/",
                    json={"Name": "x", "StageName": "s", "CloseDate": "someday"},
                ),
                400,
                "JSON_PARSER_ERROR",
            ),
            (
                c.post(
                    f"{base}/Opportunity/",
                    json={
                        "Name": "x",
                        "StageName": "s",
                        "CloseDate": "2026-01-01",
                        "AccountId": "001Wz0000000999ZZZ",
                    },
                ),
                400,
                "INVALID_CROSS_REFERENCE_KEY",
            ),
            (c.get("/services/data/v60.0/nothing/here"), 404, "NOT_FOUND"),
            (
                c.get("/services/data/v60.0/query/01gWz0000000001AAA-200"),
                400,
                "INVALID_QUERY_LOCATOR",
            ),
        ]
        for answer, status, code in cases:
            assert answer.status_code == status, answer.text
            assert answer.json()[0]["errorCode"] == code
            assert "Sforce-Limit-Info" in answer.headers


def test_query_all_deleted_pages_through_query_all_locator(sf: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [sf.Product2.create({"Name": f"gone-{tag}-{i}"})["id"] for i in range(210)]
    for record_id in ids:
        sf.Product2.delete(record_id)
    soql = f"SELECT Id FROM Product2 WHERE Name LIKE 'gone-{tag}-%'"
    first = sf.query(soql, include_deleted=True)
    assert "/queryAll/01g" in first["nextRecordsUrl"]
    assert len(sf.query_all(soql, include_deleted=True)["records"]) == 210


def test_sobject_collections_create_many_records_in_one_call(sf: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    records = [{"attributes": {"type": "Account"}, "Name": f"Bulk {tag} {i}"} for i in range(3)] + [
        {"attributes": {"type": "Account"}}
    ]  # no Name: that record fails, alone
    results = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert [r["success"] for r in results] == [True, True, True, False]
    assert results[3]["errors"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    found = sf.query(f"SELECT Id FROM Account WHERE Name LIKE 'Bulk {tag}%'")
    assert found["totalSize"] == 3
    assert {r["Id"] for r in found["records"]} == {r["id"] for r in results[:3]}
    too_many = [{"attributes": {"type": "Account"}, "Name": "x"}] * 201
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})
    assert "EXCEEDED_ID_LIMIT" in str(refused.value)
