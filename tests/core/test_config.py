from __future__ import annotations

import pytest

from adapters.billing.plugin import BillingSettings
from adapters.erp.plugin import ErpSettings
from collector import load_settings
from tracing import ConfigError


def test_defaults_are_the_embedded_demo():
    s = load_settings(env={})
    assert s.api.port == 7400 and s.dashboard.port == 8501
    assert s.bus.kind == "embedded" and not s.use_kafka
    assert s.demo.enabled


def test_file_then_environment(tmp_path):
    cfg = tmp_path / "interlock.toml"
    cfg.write_text('[api]\nport = 7600\n[lineage]\npath = "x.duckdb"\n[demo]\nenabled = false\n')
    s = load_settings(cfg, env={"INTERLOCK_API_PORT": "7700", "INTERLOCK_KAFKA_BOOTSTRAP": "h:9"})
    assert s.api.port == 7700
    assert s.lineage.path == "x.duckdb"
    assert s.demo.enabled is False
    assert s.use_kafka and s.bus.kafka_bootstrap == "h:9"


def test_secrets_stay_secret():
    s = load_settings(env={"INTERLOCK_BILLING_API_KEY": "sk_test_123"})
    assert "sk_test_123" not in repr(s)
    assert (
        s.section("billing", BillingSettings).api_key is not None
        and s.section("billing", BillingSettings).api_key.get_secret_value() == "sk_test_123"
    )


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"INTERLOCK_API_PORT": "seventy"}, "api.port"),
        ({"INTERLOCK_BUS_KIND": "carrier-pigeon"}, "bus.kind"),
    ],
)
def test_bad_values_name_the_setting(env, setting):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert info.value.setting == setting


def test_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[api\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_secure_defaults_outside_the_demo_landscape():
    settings = load_settings(env={})
    assert settings.api.require_auth_for_reads is True
    assert settings.section("billing", BillingSettings).attach_test_card is False
    # Reads can be opened explicitly, and the test card asked for (a Stripe test account).
    opened = load_settings(
        env={
            "INTERLOCK_API_REQUIRE_AUTH_FOR_READS": "false",
            "INTERLOCK_BILLING_ATTACH_TEST_CARD": "1",
        }
    )
    assert opened.api.require_auth_for_reads is False
    assert opened.section("billing", BillingSettings).attach_test_card is True


def test_only_the_demo_landscape_turns_the_test_card_on():
    from adapters.sandbox._landscape import LandscapeEndpoints
    from adapters.sandbox.plugin import with_landscape

    ep = LandscapeEndpoints(
        erp_url="http://erp", erp_database="erp", erp_user="admin", erp_password="pw",
        billing_url="http://billing", billing_api_key="sk_test_x", webhook_secret="whsec_x",
        crm_url="https://crm", crm_token="t", crm_ca_file="ca.pem",
        crm_consumer_key="3MVGx", crm_username="u@x.test", crm_private_key_file="k.pem",
        support_url="http://support", support_email="a@b.test", support_token="t",
        servicenow_url="https://sn", servicenow_username="u", servicenow_password="p",
        servicenow_client_id="c", servicenow_client_secret="s", servicenow_ca_file="sn.pem",
    )  # fmt: skip
    demo = with_landscape(load_settings(env={}), ep)
    assert demo.section("billing", BillingSettings).attach_test_card is True
    # Reads still need a token: the demo's dashboard is handed its demo-viewer token.
    assert demo.api.require_auth_for_reads is True


def test_a_plugin_section_is_validated_at_load_and_named(tmp_path):
    cfg = tmp_path / "interlock.toml"
    cfg.write_text('[erp]\nurl = "http://erp.internal:8000"\ndatabase = "prod"\n')
    s = load_settings(cfg, env={"INTERLOCK_ERP_USER": "interlock"})
    erp = s.section("erp", ErpSettings)
    assert (erp.url, erp.database, erp.user) == ("http://erp.internal:8000", "prod", "interlock")
    cfg.write_text("[erp]\ndatabse = 'typo'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert info.value.setting == "erp.databse"
    cfg.write_text("[billing]\nmax_subscription_items = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert info.value.setting == "billing.max_subscription_items"


def test_a_section_no_plugin_owns_is_refused(tmp_path):
    cfg = tmp_path / "interlock.toml"
    cfg.write_text("[freshdesk]\nurl = 'https://x.freshdesk.com'\n")
    with pytest.raises(ConfigError, match="not a settings section") as info:
        load_settings(cfg, env={})
    assert info.value.setting == "freshdesk"


def test_secrets_of_plugin_sections_stay_masked():
    s = load_settings(
        env={
            "INTERLOCK_ERP_PASSWORD": "hunter2",
            "INTERLOCK_BILLING_WEBHOOK_SECRETS": "whsec_a,whsec_b",
        }
    )
    assert "hunter2" not in repr(s) and "whsec_a" not in repr(s)
    secrets = s.section("billing", BillingSettings).webhook_secrets
    assert [x.get_secret_value() for x in secrets] == ["whsec_a", "whsec_b"]
