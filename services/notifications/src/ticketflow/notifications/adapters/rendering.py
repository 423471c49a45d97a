"""Render notification templates (one TOML per locale under templates/) with jinja2.

`StrictUndefined` makes a variable the template needs but the caller did not pass an error
(`RenderError` -> dead letter); a half-rendered message is never sent. The sandboxed environment
keeps templates from reaching Python internals through the variables.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_LOCALE = "ru"  # both desks serve Russian customers first


class RenderError(Exception):
    """The template is unknown, broken, or needs a variable that was not given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    body: str
    locale: str  # the locale actually used, after fallback


def normalise_locale(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def locale_chain(requested: str | None, default: str = DEFAULT_LOCALE) -> list[str]:
    """`pt-BR` -> [`pt-br`, `pt`, default]: the order in which locales are tried."""
    chain: list[str] = []
    if requested:
        tag = normalise_locale(requested)
        chain.append(tag)
        language = tag.split("-", 1)[0]
        if language != tag:
            chain.append(language)
    if default not in chain:
        chain.append(default)
    return chain


class TemplateCatalog:
    def __init__(self, sources: Mapping[str, Mapping[str, Mapping[str, str]]], default_locale: str = DEFAULT_LOCALE):
        """`sources[locale][template] = {"subject": ..., "body": ...}`."""
        if default_locale not in sources:
            raise ValueError(f"default locale {default_locale!r} has no templates")
        self.default_locale = default_locale
        self._env = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text for chat and mail; never HTML
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._compiled: dict[tuple[str, str], tuple[jinja2.Template, jinja2.Template]] = {}
        for locale, templates in sources.items():
            for name, parts in templates.items():
                try:
                    subject = self._env.from_string(parts["subject"])
                    body = self._env.from_string(parts["body"])
                except (KeyError, jinja2.TemplateSyntaxError) as exc:
                    raise ValueError(f"template {locale}/{name} is broken: {exc}") from exc
                self._compiled[(normalise_locale(locale), name)] = (subject, body)

    @classmethod
    def from_directory(cls, directory: Path | None = None, default_locale: str = DEFAULT_LOCALE) -> TemplateCatalog:
        """Load every `<locale>.toml`; by default the templates shipped with this package."""
        root: Any = directory if directory is not None else resources.files("ticketflow.notifications") / "templates"
        sources: dict[str, dict[str, dict[str, str]]] = {}
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".toml"):
                sources[entry.name.removesuffix(".toml")] = tomllib.loads(entry.read_text(encoding="utf-8"))
        return cls(sources, default_locale)

    @property
    def locales(self) -> set[str]:
        return {locale for locale, _ in self._compiled}

    def templates(self, locale: str) -> set[str]:
        return {name for loc, name in self._compiled if loc == normalise_locale(locale)}

    def render(self, template: str, locale: str | None, variables: Mapping[str, Any]) -> RenderedMessage:
        for candidate in locale_chain(locale, self.default_locale):
            compiled = self._compiled.get((candidate, template))
            if compiled is None:
                continue
            subject_template, body_template = compiled
            try:
                subject = subject_template.render(variables)
                body = body_template.render(variables)
            except jinja2.UndefinedError as exc:
                raise RenderError(f"template {candidate}/{template}: {exc.message}") from exc
            except jinja2.TemplateError as exc:
                raise RenderError(f"template {candidate}/{template}: {type(exc).__name__}: {exc}") from exc
            except Exception as exc:  # a variable of the wrong shape (e.g. `checks` not a list)
                raise RenderError(f"template {candidate}/{template}: {type(exc).__name__}: {exc}") from exc
            return RenderedMessage(" ".join(subject.split()), body.strip() + "\n", candidate)
        raise RenderError(f"unknown template {template!r}")
