"""URL routes of the reference app."""

from __future__ import annotations

from django.urls import path

from lagscope.refapp import views

urlpatterns = [
    path("api/items/", views.api_items, name="api-items"),
    path("items/", views.items_page, name="items"),
]
