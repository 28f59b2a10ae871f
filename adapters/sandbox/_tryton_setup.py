"""Fill a freshly initialised Tryton database with Interlock's demo company.

Run as ``python -m adapters.sandbox._tryton_setup CONF DATABASE`` by
``build_template``: proteus binds trytond's configuration and pool globally for
the whole process, so the set-up runs in a child process of its own and the
caller's interpreter stays clean.

What it creates: the company "Interlock Demo Co" in USD, calendar fiscal years
from last year to three years ahead with invoice sequences and monthly periods,
the stock chart of accounts, the payment term ``NET30``, a product category with
revenue and expense accounts, the service products of the price book, and the
sale and accounting groups for the admin user (so it may confirm sales and post
invoices), and for bank statements: the company's bank account ``BANK_ACCOUNT``, an
"Unallocated receipts" suspense account for lines no invoice claims, and the
statement journal ``BANK_JOURNAL`` on that bank account (validated by amount, so
files need not chain their balances).

For the product catalog: the price list ``PRICE_LIST`` (the sale configuration's
default, ``sale_price_list``) with one open-ended, dated line per product at its list
price (``product_price_list_dates``: later prices are later lines with a start date),
and a sales tax per country of ``TAXES``, the tax configuration an order's customer
country needs.
"""

from __future__ import annotations

import datetime
import sys
from decimal import Decimal
from typing import Any

__all__ = [
    "BANK_ACCOUNT",
    "BANK_JOURNAL",
    "COMPANY_NAME",
    "PARENT_OF",
    "PAYMENT_TERM",
    "PRICE_LIST",
    "PRODUCTS",
    "SUBSIDIARY_OF",
    "SUSPENSE_ACCOUNT",
    "TAXES",
    "main",
]

COMPANY_NAME = "Interlock Demo Co"
#: The party relation a subsidiary has to its parent, and its reverse.
SUBSIDIARY_OF = "Subsidiary of"
PARENT_OF = "Parent of"
PAYMENT_TERM = "NET30"
#: The company's bank account number, as MT940 ``:25:`` and camt.053 ``Acct/Id/IBAN`` name it.
BANK_ACCOUNT = "NL91ABNA0417164300"
#: The statement journal on that account.
BANK_JOURNAL = "Bank"
#: The code of the suspense account that holds money no invoice claims.
SUSPENSE_ACCOUNT = "1.1.9"
#: SKU -> (name, monthly list price in USD); the SKU is the product code.
PRODUCTS: dict[str, tuple[str, Decimal]] = {
    "PLAT-STARTER": ("Platform Starter", Decimal("49")),
    "PLAT-PRO": ("Platform Pro", Decimal("199")),
    "PLAT-ENT": ("Platform Enterprise", Decimal("999")),
    "SEATS-ADDON": ("Additional Seats", Decimal("15")),
    "SUPPORT-PREMIUM": ("Premium Support", Decimal("300")),
}
#: The catalog's price list: its lines are the effective-dated prices.
PRICE_LIST = "Catalog"
#: Country (ISO 3166 alpha-2) -> the rate of its sales tax; the taxes' names are the
#: catalog's tax configuration (``adapters.catalog.DEFAULT_TAXES``).
TAXES: dict[str, Decimal] = {
    "US": Decimal("0"),
    "CA": Decimal("0.05"),
    "DE": Decimal("0.19"),
    "GB": Decimal("0.20"),
    "FR": Decimal("0.20"),
    "NL": Decimal("0.21"),
    "SE": Decimal("0.25"),
}
# Groups the admin user needs for the adapter's calls (module, XML id).
_ADMIN_GROUPS = (
    ("sale", "group_sale"),
    ("sale", "group_sale_admin"),
    ("account", "group_account"),
    ("account", "group_account_admin"),
    ("product", "group_product_admin"),
    ("account_statement", "group_statement"),
)


def _setup(config_file: str, database: str) -> None:
    from proteus import Model, config
    from trytond.modules.account.tests.tools import (
        create_chart,
        create_fiscalyear,
        get_accounts,
    )
    from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences
    from trytond.modules.company.tests.tools import create_company, get_company

    cfg: Any = config.set_trytond(database, config_file=config_file)

    party_model = Model.get("party.party")
    company_party = party_model(name=COMPANY_NAME)
    company_party.save()
    create_company(party=company_party, currency="USD")
    company = get_company()

    # Give admin the functional groups before anything needs their access rights.
    user_model = Model.get("res.user")
    group_model = Model.get("res.group")
    model_data = Model.get("ir.model.data")
    admin = user_model.find([("login", "=", "admin")])[0]
    for module, xml_id in _ADMIN_GROUPS:
        group = group_model(model_data.get_id(module, xml_id, cfg.context))
        if group not in admin.groups:
            admin.groups.append(group)
    admin.save()
    cfg._context = user_model.get_preferences(True, {})

    create_chart(company)
    accounts = get_accounts(company)

    # Calendar years: the stock helper covers only about a year around today.
    this_year = datetime.date.today().year
    for year in range(this_year - 1, this_year + 4):
        fiscalyear = create_fiscalyear(
            company, today=(datetime.date(year, 1, 1), datetime.date(year, 12, 31))
        )
        fiscalyear.name = str(year)
        set_fiscalyear_invoice_sequences(fiscalyear)
        fiscalyear.save()
        fiscalyear.click("create_period")

    term_model = Model.get("account.invoice.payment_term")
    term = term_model(name=PAYMENT_TERM)
    line = term.lines.new(type="remainder")
    line.relativedeltas.new(days=30)
    term.save()

    category_model = Model.get("product.category")
    category = category_model(name="Subscriptions and services")
    category.accounting = True
    category.account_revenue = accounts["revenue"]
    category.account_expense = accounts["expense"]
    category.save()

    uom_model = Model.get("product.uom")
    (unit,) = uom_model.find([("name", "=", "Unit")])
    template_model = Model.get("product.template")
    price_list = Model.get("product.price_list")(name=PRICE_LIST, price="list_price")
    for sku, (name, price) in PRODUCTS.items():
        template = template_model()
        template.name = name
        template.code = sku
        template.default_uom = unit
        template.type = "service"
        template.salable = True
        template.list_price = price
        template.account_category = category
        template.save()
        line = price_list.lines.new()
        line.product = template.products[0]
        line.formula = str(price)
    price_list.save()
    sale_config = Model.get("sale.configuration")(1)
    sale_config.sale_price_list = price_list
    sale_config.save()

    from adapters.catalog._checks import DEFAULT_TAXES

    for country, rate in TAXES.items():
        tax = Model.get("account.tax")()
        tax.name = DEFAULT_TAXES[country]
        tax.description = tax.name
        tax.type = "percentage"
        tax.rate = rate
        tax.invoice_account = accounts["tax"]
        tax.credit_note_account = accounts["tax"]
        tax.save()

    _bank_journal(company, accounts)
    _relation_types()


def _relation_types() -> None:
    """The hierarchy's two relation types, each the other's reverse."""
    from proteus import Model

    type_model = Model.get("party.relation.type")
    child = type_model(name=SUBSIDIARY_OF)
    child.save()
    parent = type_model(name=PARENT_OF, reverse=child)
    parent.save()
    child.reverse = parent
    child.save()


def _bank_journal(company: Any, accounts: dict[str, Any]) -> None:
    """The company's bank account, a suspense account and the statement journal."""
    from proteus import Model

    bank_party = Model.get("party.party")(name="Demo Bank")
    bank_party.save()
    bank = Model.get("bank")(party=bank_party)
    bank.save()
    account = Model.get("bank.account")()
    account.bank = bank
    account.owners.append(Model.get("party.party")(company.party.id))
    account.currency = company.currency
    number = account.numbers.new()
    number.type = "other"
    number.number = BANK_ACCOUNT
    account.save()

    cash = accounts["cash"]
    suspense = Model.get("account.account")(
        name="Unallocated receipts", code=SUSPENSE_ACCOUNT, type=cash.type, parent=cash.parent
    )
    suspense.save()

    (account_journal,) = Model.get("account.journal").find([("code", "=", "STA")], limit=1)
    journal = Model.get("account.statement.journal")(
        name=BANK_JOURNAL,
        journal=account_journal,
        account=cash,
        bank_account=account,
        validation="amount",
    )
    journal.save()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``CONF DATABASE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m adapters.sandbox._tryton_setup CONF DATABASE", file=sys.stderr)
        return 2
    _setup(args[0], args[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
