"""Default channels, categories and priorities (../shared/DOMAIN.md)."""

from typing import Literal

Channel = Literal[
    "hall_counter",
    "hotline_10000",
    "online_hall",
    "app",
    "sms",
    "wechat",
    "weibo",
    "qq",
    "email",
    "self_service_terminal",
    "regulator_appeal",
    "internet_media",
]
Category = Literal[
    "billing",
    "network_quality",
    "service_attitude",
    "business_handling",
    "product_terminal",
    "value_added_charges",
    "installation_repair",
    "privacy_security",
    "marketing_claims",
]
Priority = Literal["normal", "urgent", "major"]
Ownership = Literal["self_operated", "partner"]
