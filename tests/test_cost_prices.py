"""Price catalog: every value dated and sourced, user overrides, errors naming key and unit, FX."""

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.prices import PriceBook, load_prices
from dsdeploy.errors import UserError


def test_packaged_catalog_complete():
    p = load_prices()
    cat = load_catalog()
    assert set(cat.accelerators) <= set(p.accelerator)  # every accelerator has a purchase price
    for a in p.accelerator.values():
        assert a.purchase.date and a.purchase.source
    # hand-checked figures from facts.md
    assert p.accelerator["h100-sxm"].purchase.value == 27_500
    assert p.accelerator["h200-sxm"].rent_hour.value == 3.59
    assert p.electricity["us-avg"].per_kwh.value == 0.0806
    assert p.pue["global-avg-2024"].value == 1.56
    assert p.staff.salary.value == 300_000 and p.staff.salary.currency == "CNY"
    # estimates are marked
    assert p.accelerator["h100-pcie"].purchase.label == "unconfirmed"
    assert p.accelerator["b200"].purchase.label == "quoted"


def test_prices_are_labelled_quoted_with_date_not_spec():
    """Issue 13: a price is a dated quote, not a specification; BOM lines say 'quoted <date>'."""
    from dsdeploy.planner.bom import _line

    p = load_prices()
    book = PriceBook.build(p, "USD")
    line = _line(book, "accelerator", "B200", p.accelerator["b200"].purchase, 8)
    assert line.label == "quoted 2026"
    assert "spec" not in line.label


def test_fx_conversion():
    p = load_prices()
    usd = PriceBook.build(p, "USD", fx_rate=8.0)
    cny = PriceBook.build(p, "CNY", fx_rate=8.0)
    assert usd.money(p.staff.salary) == pytest.approx(37_500)
    assert cny.money(p.accelerator["h100-sxm"].purchase) == pytest.approx(220_000)
    assert cny.money(p.staff.salary) == 300_000
    with pytest.raises(UserError):
        PriceBook.build(p, "EUR")
    with pytest.raises(UserError):
        PriceBook.build(p, "USD", fx_rate=0)


def test_api_timeline():
    b = PriceBook.build(load_prices(), "USD")
    assert b.api_period("deepseek", "deepseek-reasoner")[1].output.value == 0.42  # latest: V3.2
    assert b.api_period("deepseek", "deepseek-reasoner", "2025-03-01")[1].output.value == 2.19
    assert b.api_period("deepseek", "deepseek-reasoner", "2025-09-10")[1].output.value == 1.68
    assert b.api_period("deepseek", "deepseek-chat", "2025-01-15")[1].output.currency == "CNY"
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        b.api_period("deepseek", "deepseek-reasoner", "March 2025")
    with pytest.raises(UserError, match="no deepseek"):
        b.api_period("deepseek", "deepseek-reasoner", "2024-01-01")


def test_user_override_single_value(tmp_path):
    f = tmp_path / "my.toml"
    f.write_text('[accelerator."h100-sxm".purchase]\nvalue = 210000\ncurrency = "CNY"\n')
    p = load_prices(f)
    assert p.accelerator["h100-sxm"].purchase.value == 210_000
    assert p.accelerator["h100-sxm"].purchase.source.startswith("facts.md")  # untouched keys stay
    assert p.accelerator["h200-sxm"].purchase.value == 32_000


@pytest.mark.parametrize(
    "text,needle",
    [
        ('[accelerator."h100-sxm".purchase]\nvalue = "cheap"\n', 'accelerator."h100-sxm".purchase.value'),
        ('[accelerator.new]\nserver = "hgx-8gpu"\npurchase = { value = 1 }\n', "money per device"),
        ('[electricity.home]\nper_kwh = { value = 0.2, date = "2025", source = "bill" }\n', "money per kWh"),
        ('[accelerator."h100-sxm".purchase]\nvalue = -5\n', "money per device"),
        ("[staff]\nbonus = 1\n", "unknown key"),
        ('[pue.bad]\nvalue = 0.8\ndate = "x"\nsource = "me!"\n', "PUE"),
    ],
)
def test_malformed_file_names_key_and_unit(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError) as e:
        load_prices(f)
    assert needle in str(e.value)


def test_not_toml(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("this is = = not toml")
    with pytest.raises(UserError, match="not valid TOML"):
        load_prices(f)
    with pytest.raises(UserError, match="no such file"):
        load_prices(tmp_path / "missing.toml")
