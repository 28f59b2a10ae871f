"""Alerts: ranked by risk tier (money at risk now, then latent), then value at risk, as the
control API orders them, with acknowledgement."""

from __future__ import annotations

import streamlit as st

from dashboards import _data as data
from dashboards._client import ControlApiError
from dashboards._format import at_risk_text, format_time
from dashboards._runbooks import runbook_link
from dashboards._session import can, current
from dashboards._views import call

TITLE = "Alerts"

st.title("SLA alerts by business impact")
st.caption(
    "Money at risk now first, then latent risk (nothing at risk until an order uses what "
    "failed); within a tier by value at risk."
)
include_resolved = st.toggle("Include resolved", value=False)
alerts = call(data.alerts, include_resolved=include_resolved)
if not alerts:
    st.success("No open SLA alerts.")
    st.stop()

runbooks = {r["rule_id"]: r.get("runbook") for r in call(data.sla_rules)}
# Acknowledging needs the operator role (the API refuses it below that, too).
can_ack = can(current(), "operator")
for alert in alerts:
    risk = "latent risk" if alert.get("risk_tier") == "latent" else "money at risk"
    header = (
        f"**{alert['rule_name']}** · {risk} · {alert['severity']} · {alert['state']} · "
        f"{at_risk_text(alert)} · {alert['customers_affected']} "
        f"{'customer' if alert['customers_affected'] == 1 else 'customers'}"
    )
    with st.container(border=True):
        st.markdown(header)
        st.caption(
            f"Score {alert['score']:.1f} · tier {alert['impact_tier'].replace('_', ' ')} · "
            f"opened {format_time(alert['opened_at'])} · scope {alert['scope']}"
            + (f" · acknowledged by {alert['acknowledged_by']}" if alert["acknowledged_by"] else "")
        )
        st.write(alert["summary"])
        st.markdown(
            runbook_link(runbooks.get(alert["rule_id"]))
            or "No runbook is set for this SLA; see [all runbooks](./Runbooks)."
        )
        if can_ack and alert["state"] == "firing":
            with st.form(f"ack-{alert['alert_id']}"):
                note = st.text_input("Note", key=f"note-{alert['alert_id']}")
                if st.form_submit_button("Acknowledge"):
                    try:
                        data.acknowledge_alert(alert["alert_id"], note=note or None)
                    except ControlApiError as exc:
                        st.error(f"Not acknowledged: {exc.detail}")
                    else:
                        st.success("Acknowledged.")
                        st.rerun()
