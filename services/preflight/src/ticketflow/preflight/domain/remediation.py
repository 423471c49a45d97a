"""What to tell the portal administrator for each failed check, in Russian and English.

Server-side problems are for the customer's system administrator (seed: "Ошибки, связанные с настройкой
сервера, должны решаться системным администратором"), so most messages say so.
"""

from __future__ import annotations

from ticketflow.preflight.domain.checks import CheckName, Remediation

_ADMIN_RU = " Это настройка сервера: её выполняет системный администратор вашего портала."
_ADMIN_EN = " This is a server setting: your portal's system administrator fixes it."

# reason -> (ru, en); placeholders: {url} {detail} {path}
_BY_REASON: dict[str, tuple[str, str]] = {
    "malformed_url": (
        "Публичный адрес портала «{url}» указан неверно ({detail}). Укажите полный адрес вида "
        "https://portal.example.ru в настройках портала (Настройки > Настройки продукта > Настройки модулей"
        " > Главный модуль > URL сайта).",
        "The portal's public address '{url}' is malformed ({detail}). Set the full address, "
        "e.g. https://portal.example.com, in Settings > Product settings > Module settings > Main module "
        "> Site URL.",
    ),
    "not_https": (
        "Публичный адрес портала «{url}» не использует HTTPS. Поддержка работает только с порталами, "
        "доступными по HTTPS с действительным сертификатом: настройте HTTPS и укажите адрес https://...",
        "The portal's public address '{url}' does not use HTTPS. Support needs the portal reachable over "
        "HTTPS with a valid certificate: enable HTTPS and set the address to https://...",
    ),
    "not_resolved": (
        "Имя из адреса портала не находится в DNS ({detail}). Проверьте, что публичный адрес указан верно "
        "и что для домена есть DNS-запись A или AAAA.",
        "The name in the portal's address does not resolve in DNS ({detail}). Check the public address and "
        "that the domain has an A or AAAA record.",
    ),
    "forbidden_address": (
        "Адрес портала ведёт на локальный или внутренний IP ({detail}). Портал должен быть доступен из "
        "интернета по публичному адресу: укажите внешний адрес и опубликуйте портал." + _ADMIN_RU,
        "The portal's address points to a local or internal IP ({detail}). The portal must be reachable "
        "from the internet at a public address: set the external address and publish the portal." + _ADMIN_EN,
    ),
    "forbidden_port": (
        "Адрес портала указывает на нестандартный порт ({detail}). Опубликуйте портал по HTTPS на порту 443 "
        "и укажите адрес без номера порта." + _ADMIN_RU,
        "The portal's address names a port support does not check ({detail}). Publish the portal over HTTPS "
        "on port 443 and give its address without a port number." + _ADMIN_EN,
    ),
    "connection_failed": (
        "Не удалось подключиться к порталу по HTTPS ({detail}). Откройте порт HTTPS (обычно 443) для "
        "входящих соединений из интернета на сервере и межсетевом экране." + _ADMIN_RU,
        "Could not connect to the portal over HTTPS ({detail}). Open the HTTPS port (usually 443) to "
        "inbound connections from the internet on the server and firewall." + _ADMIN_EN,
    ),
    "timeout": (
        "Портал не ответил вовремя ({detail}). Проверьте, что сервер доступен из интернета и не "
        "перегружен." + _ADMIN_RU,
        "The portal did not answer in time ({detail}). Check that the server is reachable from the "
        "internet and not overloaded." + _ADMIN_EN,
    ),
    "tls_handshake_failed": (
        "На порту HTTPS не удалось установить TLS-соединение ({detail}). Проверьте настройку HTTPS "
        "в веб-сервере (nginx/Apache)." + _ADMIN_RU,
        "No TLS connection could be set up on the HTTPS port ({detail}). Check the web server's "
        "(nginx/Apache) HTTPS configuration." + _ADMIN_EN,
    ),
    "not_http": (
        "Сервер портала ответил не по протоколу HTTP ({detail}). Проверьте веб-сервер." + _ADMIN_RU,
        "The portal's server did not answer in HTTP ({detail}). Check the web server." + _ADMIN_EN,
    ),
    "redirect_loop": (
        "Адрес {path} перенаправляет по кругу ({detail}). Проверьте правила перенаправления веб-сервера." + _ADMIN_RU,
        "{path} redirects in a loop ({detail}). Check the web server's redirect rules." + _ADMIN_EN,
    ),
    "too_many_redirects": (
        "Слишком много перенаправлений при открытии {path} ({detail})." + _ADMIN_RU,
        "Too many redirects when opening {path} ({detail})." + _ADMIN_EN,
    ),
    "redirect_not_https": (
        "Адрес {path} перенаправляет на HTTP без шифрования ({detail}). Настройте перенаправления на "
        "HTTPS." + _ADMIN_RU,
        "{path} redirects to unencrypted HTTP ({detail}). Make redirects point to HTTPS." + _ADMIN_EN,
    ),
    "self_signed": (
        "SSL-сертификат портала самоподписанный ({detail}). Установите сертификат, выданный "
        "доверенным центром сертификации (например, Let's Encrypt)." + _ADMIN_RU,
        "The portal's SSL certificate is self-signed ({detail}). Install a certificate issued by a "
        "trusted certificate authority (e.g. Let's Encrypt)." + _ADMIN_EN,
    ),
    "expired": (
        "Срок действия SSL-сертификата портала истёк ({detail}). Продлите сертификат и перезапустите "
        "веб-сервер." + _ADMIN_RU,
        "The portal's SSL certificate has expired ({detail}). Renew it and reload the web server." + _ADMIN_EN,
    ),
    "not_yet_valid": (
        "SSL-сертификат портала ещё не начал действовать ({detail}). Проверьте сертификат и часы сервера." + _ADMIN_RU,
        "The portal's SSL certificate is not valid yet ({detail}). Check the certificate and the "
        "server's clock." + _ADMIN_EN,
    ),
    "hostname_mismatch": (
        "SSL-сертификат выдан не на адрес портала ({detail}). Выпустите сертификат на имя из публичного "
        "адреса портала." + _ADMIN_RU,
        "The SSL certificate is not issued for the portal's address ({detail}). Issue a certificate for "
        "the name in the portal's public address." + _ADMIN_EN,
    ),
    "untrusted_issuer": (
        "SSL-сертификат выдан недоверенным центром или не хватает промежуточного сертификата "
        "({detail}). Установите полную цепочку сертификатов." + _ADMIN_RU,
        "The SSL certificate's issuer is not trusted or an intermediate certificate is missing "
        "({detail}). Install the full certificate chain." + _ADMIN_EN,
    ),
    "revoked": (
        "SSL-сертификат портала отозван ({detail}). Выпустите новый сертификат." + _ADMIN_RU,
        "The portal's SSL certificate is revoked ({detail}). Issue a new certificate." + _ADMIN_EN,
    ),
    "invalid_certificate": (
        "SSL-сертификат портала недействителен ({detail}). Установите действительный сертификат." + _ADMIN_RU,
        "The portal's SSL certificate is invalid ({detail}). Install a valid certificate." + _ADMIN_EN,
    ),
    "pub_not_readable": (
        "Директория {path} недоступна без авторизации ({detail}). Через неё поддержка получает "
        "скриншоты: разрешите анонимное чтение {path} в правах доступа к папке и в веб-сервере." + _ADMIN_RU,
        "The {path} directory is not readable without logging in ({detail}). Support receives "
        "screenshots through it: allow anonymous read access to {path} in folder permissions and the "
        "web server." + _ADMIN_EN,
    ),
    "not_json": (
        "Сервер портала отвечает не в формате JSON там, где ожидается JSON ({detail}). Обычно причина "
        "в веб-сервере или прокси, подменяющем ответ (страница ошибки, заглушка, авторизация)." + _ADMIN_RU,
        "The portal's server does not answer in JSON where JSON is expected ({detail}). Usually a web "
        "server or proxy replaces the answer (an error page, a stub, a login page)." + _ADMIN_EN,
    ),
    "too_large": (
        "Ответ сервера портала слишком большой ({detail}); ожидался короткий JSON." + _ADMIN_RU,
        "The portal's answer is too large ({detail}); a short JSON answer was expected." + _ADMIN_EN,
    ),
    "demo_license": (
        "На портале демо-лицензия ({detail}). Поддержка доступна только с активной коммерческой "
        "лицензией: активируйте ключ в разделе Настройки > Обновление платформы.",
        "The portal runs a demo license ({detail}). Support needs an active commercial license: "
        "activate your key in Settings > Platform update.",
    ),
    "license_expired": (
        "Лицензия портала неактивна ({detail}). Продлите лицензию и активируйте ключ.",
        "The portal's license is not active ({detail}). Renew the license and activate the key.",
    ),
    "updates_missing": (
        "Установлены не все стабильные обновления ({detail}). Установите их в разделе Настройки > "
        "Обновление платформы, затем обратитесь снова.",
        "Not all stable updates are installed ({detail}). Install them in Settings > Platform update, then ask again.",
    ),
}

_FALLBACK = (
    "Проверка «{check}» не пройдена ({detail})." + _ADMIN_RU,
    "The '{check}' check failed ({detail})." + _ADMIN_EN,
)


def remediation_for(check: CheckName, reason: str, *, url: str, detail: str, path: str = "/") -> Remediation:
    ru, en = _BY_REASON.get(reason, _FALLBACK)
    values = {"url": url, "detail": detail, "path": path, "check": check.value}
    return Remediation(ru=ru.format(**values), en=en.format(**values))


def known_reasons() -> frozenset[str]:
    return frozenset(_BY_REASON)
