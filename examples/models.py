"""Pydantic models for examples/pydantic_model.dec (imported with the program's folder on the path)."""

from typing import Literal

from pydantic import BaseModel, Field


class City(BaseModel):
    name: str = Field(max_length=20)
    country: str = Field(max_length=20)
    continent: Literal["Africa", "America", "Asia", "Europe", "Oceania"]
