from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from tracing import REDACTED, mask_email, mask_payload, redact_secrets


def test_known_fields_are_masked_recursively():
    payload = {
        "customer": {"name": "Acme Corp", "email": "jane.doe@acme.com", "phone": "+1 555 1234567"},
        "contact_name": "Jane Doe",
        "api_key": "sk_test_abcdef",
        "lines": [{"sku": "PLAT-PRO", "Contact_Email__c": "bob@x.io"}],
        "note": "call jane.doe@acme.com tomorrow",
        "amount": 10,
    }
    masked = mask_payload(payload)
    assert masked["customer"] == {"name": "Acme Corp", "email": "j***@acme.com", "phone": "***67"}
    assert masked["contact_name"] == "J. D."
    assert masked["api_key"] == REDACTED
    assert masked["lines"][0] == {"sku": "PLAT-PRO", "Contact_Email__c": "b***@x.io"}
    assert masked["note"] == "call j***@acme.com tomorrow"
    assert masked["amount"] == 10
    assert payload["customer"]["email"] == "jane.doe@acme.com"  # the input is not changed


@given(st.emails())
def test_no_email_survives_masking(address):
    # A local part of asterisks only reads the same as its own mask ("*@a.be" is a
    # substring of "****@a.be"): nothing is left to hide there.
    assume(address.split("@")[0].strip("*"))
    masked = mask_payload({"free_text": f"contact {address} please", "email": address})
    assert address not in str(masked)


def test_mask_email_of_garbage():
    assert mask_email("not an address") == "***"


def test_redact_secrets_in_text():
    assert redact_secrets("token=abcd1234 ok", ["abcd1234", ""]) == f"token={REDACTED} ok"


_TEXT_NEAR_EMAILS = st.text(alphabet="ab.@-_+1 é", max_size=60)


@given(st.one_of(_TEXT_NEAR_EMAILS, st.text(max_size=60)))
def test_free_text_masks_the_same_addresses_as_the_email_regex(text):
    from tracing._masking import _EMAIL

    expected = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    assert mask_payload({"note": text}) == {"note": expected}


def test_a_long_run_of_address_characters_is_masked_in_linear_time():
    # The e-mail regex rescans such a run from every start position (quadratic:
    # minutes for these); from each "@" it is one pass.
    run = "x" * 300_000
    assert mask_payload({"note": run}) == {"note": run}
    tricky = "a" * 150_000 + "@" + "b" * 150_000 + " mail jane@acme.com"
    masked = mask_payload({"note": tricky})["note"]
    assert masked.endswith(" mail j***@acme.com") and masked.startswith("a" * 1000)
