//! The `http://host:port/path` of an http `ready` or `health` check: parsed once here,
//! for the config's validation and for the probe that connects to it.

/// An `http://` URL as a probe uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// The host as written: a name, an IPv4 address or a bracketed IPv6 address.
    pub host: String,
    /// The port, 80 when none is written.
    pub port: u16,
    /// The path and query, `/` when none is written.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let Some(rest) = text.strip_prefix("http://") else {
            return Err(match text.split_once("://") {
                Some(("https", _)) => {
                    "https is not supported: probe the plain http port, or use a tcp check"
                        .to_string()
                }
                _ => "it must start with http://".to_string(),
            });
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], rest[at..].to_string()),
            None => (rest, "/".to_string()),
        };
        let path = match path.strip_prefix('?') {
            Some(query) => format!("/?{query}"),
            None => path,
        };
        if authority.contains('@') {
            return Err("user names and passwords are not supported".to_string());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = match port.parse::<u16>() {
                    Ok(0) | Err(_) => {
                        return Err(format!("`{port}` is not a port from 1 to 65535"))
                    }
                    Ok(port) => port,
                };
                (host, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it names no host".to_string());
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the path holds a space or a control character; encode it as %20".into());
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_port_and_path() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/healthz?full=1").unwrap();
        assert_eq!(url.address(), "127.0.0.1:8080");
        assert_eq!(url.path, "/healthz?full=1");
        let url = HttpUrl::parse("http://localhost").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        assert_eq!(HttpUrl::parse("http://[::1]:81/").unwrap().host, "[::1]");
        assert_eq!(HttpUrl::parse("http://[::1]").unwrap().port, 80);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(HttpUrl::parse("https://x/").unwrap_err().contains("https"));
        assert!(HttpUrl::parse("ftp://x/").unwrap_err().contains("http://"));
        assert!(HttpUrl::parse("http://:80/").unwrap_err().contains("host"));
        assert!(HttpUrl::parse("http://x:0/").unwrap_err().contains("port"));
        assert!(HttpUrl::parse("http://x:99999/")
            .unwrap_err()
            .contains("port"));
        assert!(HttpUrl::parse("http://x/a b")
            .unwrap_err()
            .contains("space"));
        assert!(HttpUrl::parse("http://u:p@x/")
            .unwrap_err()
            .contains("password"));
    }
}
