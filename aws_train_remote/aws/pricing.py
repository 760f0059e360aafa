"""On-demand prices of SageMaker training instances, from the AWS Price List Query API only.

GetProducts (service code AmazonSageMaker) answers one JSON document per product; the filters are
the product attributes AWS itself filters on for SageMaker instances (productFamily "ML Instance",
regionCode, instanceName, and platoinstancetype "Training", which leaves out the SpotTraining,
Hosting, Processing and Studio products of the same instance type; the SageMaker Python SDK's own
price look-up filters on the same attributes, with platoinstancetype "Hosting"). Each document
holds the product and its terms: terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD
with unit "Hrs" (docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-
file-for-services.html). The query endpoint lives in us-east-1 (also ap-south-1 and eu-central-1);
the prices of every commercial region are there.

An answer is kept on disk for a day (<cache>/prices.json), per endpoint, so the sandbox's figures
never pass for AWS's. No price is invented: what cannot be looked up is a Price with `usd` None and
the reason. Only the standard library at import: the dry run reads the cache without botocore.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from ..paths import cache_root, read_json_dict, write_json_atomic

SERVICE_CODE = "AmazonSageMaker"
PRICING_REGION = "us-east-1"
CACHE_SECONDS = 24 * 3600
SOURCE = "AWS Price List Query API (pricing:GetProducts, AmazonSageMaker)"


@dataclass(frozen=True)
class Price:
    """The on-demand price of one instance-hour, in USD; None with `why` when it is not known."""
    usd: float = None
    why: str = ""
    source: str = ""  # where the figure comes from: SKU, effective date, when it was fetched

    @property
    def known(self) -> bool:
        return self.usd is not None


def product_filters(instance_type: str, region: str) -> list:
    """GetProducts' Filters for the on-demand training product of `instance_type` in `region`."""
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in (
        ("productFamily", "ML Instance"), ("regionCode", region), ("instanceName", instance_type),
        ("platoinstancetype", "Training"))]


def parse_price_list(price_list, instance_type: str, region: str) -> Price:
    """The hourly on-demand USD price in GetProducts' PriceList (JSON texts, or dicts), checked
    against the product asked for; several differing prices give the highest (the estimate is a
    worst case), none gives an unknown Price saying so."""
    found = []
    for item in price_list or []:
        doc = json.loads(item) if isinstance(item, str) else item
        product = doc.get("product") or {}
        attrs = product.get("attributes") or {}
        if attrs.get("regionCode", region) != region or attrs.get("instanceName", instance_type) != instance_type:
            continue  # not the product asked for: never priced as if it were
        if "spot" in str(attrs.get("platoinstancetype", "")).lower():
            continue
        for term in ((doc.get("terms") or {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                usd = (dimension.get("pricePerUnit") or {}).get("USD")
                if str(dimension.get("unit", "")).lower() not in ("hrs", "hr", "hours") or usd is None:
                    continue
                try:
                    value = float(usd)
                except ValueError:
                    continue
                if value > 0:
                    found.append((value, product.get("sku") or term.get("sku") or "?",
                                  str(term.get("effectiveDate") or doc.get("publicationDate") or "")[:10]))
    if not found:
        return Price(None, f"the AWS Price List has no on-demand training price for {instance_type} in {region}")
    usd, sku, effective = max(found)
    return Price(usd, source=f"{SOURCE}, SKU {sku}" + (f", effective {effective}" if effective else ""))


def fetch_price(client, instance_type: str, region: str) -> Price:
    """GetProducts, every page, parsed. Errors propagate (lookup_price names them)."""
    kwargs = {"ServiceCode": SERVICE_CODE, "Filters": product_filters(instance_type, region),
              "FormatVersion": "aws_v1", "MaxResults": 100}
    items = []
    while True:
        page = client.get_products(**kwargs)
        items += page.get("PriceList") or []
        if not page.get("NextToken"):
            return parse_price_list(items, instance_type, region)
        kwargs["NextToken"] = page["NextToken"]


def pricing_client(session):
    """The Price List client: its endpoint is in us-east-1 whatever the job's region; few attempts
    and short time-outs, because a price that cannot be had must not hold up a launch."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=20)
    return session.boto.client("pricing", region_name=PRICING_REGION, config=config)


def why_not(err) -> str:
    """A failed look-up as the reason an estimate gives for its unknown price."""
    from botocore.exceptions import ClientError

    from .session import error_code, is_credential_failure, is_network_failure

    if is_credential_failure(err):
        return "no usable AWS credentials to look the price up with"
    if isinstance(err, ClientError) and error_code(err) in ("AccessDenied", "AccessDeniedException"):
        return ("these credentials may not call pricing:GetProducts (the AWS Price List); add that action to "
                "their policy to see prices")
    if is_network_failure(err):
        return f"the AWS Price List ({PRICING_REGION}) could not be reached"
    code = error_code(err) if isinstance(err, ClientError) else type(err).__name__
    return f"the AWS Price List answered GetProducts with an error ({code})"


class PriceCache:
    """Prices by endpoint, region and instance type, each kept CACHE_SECONDS."""

    def __init__(self, environ, clock=time.time):
        self.path = os.path.join(cache_root(environ), "prices.json")
        self.endpoint = environ.get("AWS_ENDPOINT_URL") or "aws"  # the sandbox's figures are its own
        self.clock = clock

    def key(self, instance_type: str, region: str) -> str:
        return f"{self.endpoint}|{region}|{instance_type}"

    def get(self, instance_type: str, region: str):
        entry = read_json_dict(self.path).get(self.key(instance_type, region))
        if not isinstance(entry, dict) or not 0 <= self.clock() - float(entry.get("at", 0)) < CACHE_SECONDS:
            return None
        fetched = time.strftime("%Y-%m-%d", time.gmtime(float(entry["at"])))
        return Price(entry.get("usd"), entry.get("why", ""),
                     f"{entry.get('source', SOURCE)}; fetched {fetched}" if entry.get("usd") is not None else "")

    def put(self, instance_type: str, region: str, price: Price) -> None:
        data = read_json_dict(self.path)
        now = self.clock()
        data = {k: v for k, v in data.items() if isinstance(v, dict) and now - float(v.get("at", 0)) < CACHE_SECONDS}
        data[self.key(instance_type, region)] = {"usd": price.usd, "why": price.why, "source": price.source, "at": now}
        try:
            write_json_atomic(self.path, data)
        except OSError:
            pass  # a cache that cannot be written costs a look-up next time, nothing more
