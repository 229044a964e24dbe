"""The reference app's one model: an inventory item (a 500-row table)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import models


class Item(models.Model):
    # Annotated by hand: mypy runs without the django-stubs plugin.
    sku: models.CharField[str, str] = models.CharField(max_length=16, unique=True)
    name: models.CharField[str, str] = models.CharField(max_length=100)
    category: models.CharField[str, str] = models.CharField(max_length=40)
    price: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=10, decimal_places=2
    )
    quantity: models.IntegerField[int, int] = models.IntegerField()
    updated_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField()

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
