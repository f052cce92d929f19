//! The OAuth2 providers PocketBase v0.40.6 knows, by name: display name, endpoints, scopes,
//! whether PKCE is on by default, and how the provider's user JSON maps to PocketBase's
//! OAuth2 user (`id`, `name`, `username`, `email`, `avatarURL`).
//!
//! The names, display names, authorization endpoints, scopes and PKCE defaults were measured
//! on the reference (`auth-methods` with every provider configured). The token and user
//! endpoints are the providers' documented ones. `oidc`, `oidc2` and `oidc3` have no fixed
//! endpoints: the collection's provider config gives them (or an issuer to discover them).
//!
//! Invariant: a provider name outside [`PROVIDERS`] is refused when a collection is saved
//! (`validation_missing_provider`) and by `auth-with-oauth2`.

use serde_json::Value;

/// How a provider's user JSON becomes the OAuth2 user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// OpenID Connect claims (`sub`, `name`, `preferred_username`, `email` when
    /// `email_verified`, `picture`).
    Oidc,
    /// GitHub / Gitea (`id`, `name`, `login`, `email`, `avatar_url`).
    Github,
    /// GitLab (`id`, `name`, `username`, `email`, `avatar_url`).
    Gitlab,
    /// Microsoft Graph (`id`, `displayName`, `mail` or `userPrincipalName`).
    Microsoft,
    /// Discord (`id`, `global_name`, `username`, `email` when `verified`, `avatar` hash).
    Discord,
    /// Facebook Graph (`id`, `name`, `email`, `picture.data.url`).
    Facebook,
    /// Any other provider: the common keys (`id`/`sub`, `name`, `username`/`login`,
    /// `email`, `avatar_url`/`picture`).
    Generic,
}

/// One named provider.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    /// The configuration name (`oauth2.providers[].name`).
    pub name: &'static str,
    /// The default `displayName`.
    pub display_name: &'static str,
    /// The authorization endpoint ("" for the oidc providers).
    pub auth_url: &'static str,
    /// The token endpoint.
    pub token_url: &'static str,
    /// The user endpoint ("" when the user comes from the `id_token`).
    pub user_info_url: &'static str,
    /// Space separated scopes.
    pub scopes: &'static str,
    /// PKCE when the config leaves `pkce` null.
    pub pkce: bool,
    /// Extra authorization parameters (`apple`: `response_mode=form_post`).
    pub auth_params: &'static [(&'static str, &'static str)],
    /// The user JSON mapping.
    pub mapping: Mapping,
    /// The provider's user comes from a verified `id_token` (JWKS URL, issuer).
    pub id_token: Option<(&'static str, &'static str)>,
}

#[allow(clippy::too_many_arguments)]
const fn p(
    name: &'static str,
    display_name: &'static str,
    auth_url: &'static str,
    token_url: &'static str,
    user_info_url: &'static str,
    scopes: &'static str,
    pkce: bool,
    mapping: Mapping,
) -> Provider {
    Provider {
        name,
        display_name,
        auth_url,
        token_url,
        user_info_url,
        scopes,
        pkce,
        auth_params: &[],
        mapping,
        id_token: None,
    }
}

const OIDC_SCOPES: &str = "openid email profile";

/// Every provider the reference accepts, in its order.
pub const PROVIDERS: &[Provider] = &[
    p("apple", "Apple", "https://appleid.apple.com/auth/authorize", "https://appleid.apple.com/auth/token", "", "name email", true, Mapping::Oidc),
    p("google", "Google", "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v3/userinfo", "https://www.googleapis.com/auth/userinfo.profile https://www.googleapis.com/auth/userinfo.email", true, Mapping::Oidc),
    p("microsoft", "Microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "https://login.microsoftonline.com/common/oauth2/v2.0/token", "https://graph.microsoft.com/v1.0/me", "User.Read", true, Mapping::Microsoft),
    p("yandex", "Yandex", "https://oauth.yandex.com/authorize", "https://oauth.yandex.com/token", "https://login.yandex.ru/info", "login:email login:avatar login:info", true, Mapping::Generic),
    p("facebook", "Facebook", "https://www.facebook.com/v3.2/dialog/oauth", "https://graph.facebook.com/v3.2/oauth/access_token", "https://graph.facebook.com/me?fields=name,email,picture.type(large)", "email", true, Mapping::Facebook),
    p("instagram2", "Instagram", "https://www.instagram.com/oauth/authorize", "https://api.instagram.com/oauth/access_token", "https://graph.instagram.com/me?fields=id,username,account_type,user_id,name,profile_picture_url", "instagram_business_basic", true, Mapping::Generic),
    p("github", "GitHub", "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token", "https://api.github.com/user", "read:user user:email", true, Mapping::Github),
    p("gitlab", "GitLab", "https://gitlab.com/oauth/authorize", "https://gitlab.com/oauth/token", "https://gitlab.com/api/v4/user", "read_user", true, Mapping::Gitlab),
    p("bitbucket", "Bitbucket", "https://bitbucket.org/site/oauth2/authorize", "https://bitbucket.org/site/oauth2/access_token", "https://api.bitbucket.org/2.0/user", "account", false, Mapping::Generic),
    p("gitee", "Gitee", "https://gitee.com/oauth/authorize", "https://gitee.com/oauth/token", "https://gitee.com/api/v5/user", "user_info emails", true, Mapping::Github),
    p("gitea", "Gitea/Forgejo", "https://gitea.com/login/oauth/authorize", "https://gitea.com/login/oauth/access_token", "https://gitea.com/api/v1/user", "read:user user:email", true, Mapping::Github),
    p("discord", "Discord", "https://discord.com/api/oauth2/authorize", "https://discord.com/api/oauth2/token", "https://discord.com/api/users/@me", "identify email", true, Mapping::Discord),
    p("twitter", "X/Twitter", "https://x.com/i/oauth2/authorize", "https://api.x.com/2/oauth2/token", "https://api.x.com/2/users/me?user.fields=id,name,username,profile_image_url,confirmed_email", "users.read users.email tweet.read", true, Mapping::Generic),
    p("kakao", "Kakao", "https://kauth.kakao.com/oauth/authorize", "https://kauth.kakao.com/oauth/token", "https://kapi.kakao.com/v2/user/me", "account_email profile_nickname profile_image", true, Mapping::Generic),
    p("vk", "ВКонтакте", "https://oauth.vk.com/authorize", "https://oauth.vk.com/access_token", "https://api.vk.com/method/users.get?fields=photo_max,screen_name&v=5.131", "email", false, Mapping::Generic),
    p("linear", "Linear", "https://linear.app/oauth/authorize", "https://api.linear.app/oauth/token", "https://api.linear.app/graphql", "read", false, Mapping::Generic),
    p("notion", "Notion", "https://api.notion.com/v1/oauth/authorize", "https://api.notion.com/v1/oauth/token", "https://api.notion.com/v1/users/me", "", true, Mapping::Generic),
    p("monday", "monday.com", "https://auth.monday.com/oauth2/authorize", "https://auth.monday.com/oauth2/token", "https://api.monday.com/v2", "me:read", true, Mapping::Generic),
    p("box", "Box", "https://account.box.com/api/oauth2/authorize", "https://api.box.com/oauth2/token", "https://api.box.com/2.0/users/me", "root_readonly", true, Mapping::Generic),
    p("spotify", "Spotify", "https://accounts.spotify.com/authorize", "https://accounts.spotify.com/api/token", "https://api.spotify.com/v1/me", "user-read-private", true, Mapping::Generic),
    p("trakt", "Trakt", "https://trakt.tv/oauth/authorize", "https://api.trakt.tv/oauth/token", "https://api.trakt.tv/users/settings", "", true, Mapping::Generic),
    p("twitch", "Twitch", "https://id.twitch.tv/oauth2/authorize", "https://id.twitch.tv/oauth2/token", "https://api.twitch.tv/helix/users", "user:read:email", true, Mapping::Generic),
    p("wakatime", "WakaTime", "https://wakatime.com/oauth/authorize", "https://wakatime.com/oauth/token", "https://wakatime.com/api/v1/users/current", "email", true, Mapping::Generic),
    p("livechat", "LiveChat", "https://accounts.livechat.com/", "https://accounts.livechat.com/token", "https://accounts.livechat.com/v2/accounts/me", "", true, Mapping::Generic),
    p("mailcow", "mailcow", "", "", "", "profile", true, Mapping::Generic),
    p("planningcenter", "Planning Center", "https://api.planningcenteronline.com/oauth/authorize", "https://api.planningcenteronline.com/oauth/token", "https://api.planningcenteronline.com/people/v2/me", "people", true, Mapping::Generic),
    p("patreon", "Patreon", "https://www.patreon.com/oauth2/authorize", "https://www.patreon.com/api/oauth2/token", "https://www.patreon.com/api/oauth2/v2/identity?fields%5Buser%5D=full_name,email,vanity,image_url,is_email_verified", "identity identity[email]", true, Mapping::Generic),
    p("strava", "Strava", "https://www.strava.com/oauth/authorize", "https://www.strava.com/api/v3/oauth/token", "https://www.strava.com/api/v3/athlete", "profile:read_all", true, Mapping::Generic),
    p("lark", "Lark", "https://accounts.feishu.cn/open-apis/authen/v1/authorize", "https://open.feishu.cn/open-apis/authen/v2/oauth/token", "https://open.feishu.cn/open-apis/authen/v1/user_info", "", true, Mapping::Generic),
    p("oidc", "OIDC", "", "", "", OIDC_SCOPES, true, Mapping::Oidc),
    p("oidc2", "OIDC", "", "", "", OIDC_SCOPES, true, Mapping::Oidc),
    p("oidc3", "OIDC", "", "", "", OIDC_SCOPES, true, Mapping::Oidc),
];

/// Apple: the authorization answer is a form POST, the user is the verified `id_token`.
const APPLE_PARAMS: &[(&str, &str)] = &[("response_mode", "form_post")];

/// The named provider, if the reference knows it.
pub fn find(name: &str) -> Option<Provider> {
    let mut provider = *PROVIDERS.iter().find(|p| p.name == name)?;
    if provider.name == "apple" {
        provider.auth_params = APPLE_PARAMS;
        provider.id_token = Some((
            "https://appleid.apple.com/auth/keys",
            "https://appleid.apple.com",
        ));
    }
    Some(provider)
}

/// True for the generic OpenID Connect providers (`oidc`, `oidc2`, `oidc3`).
pub fn is_oidc(name: &str) -> bool {
    matches!(name, "oidc" | "oidc2" | "oidc3")
}

/// PocketBase's OAuth2 user, before `rawUser` and the tokens are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The provider's stable user id (`_externalAuths.providerId`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Username / login.
    pub username: String,
    /// E-mail, only when the provider vouches for it.
    pub email: String,
    /// Avatar URL.
    pub avatar_url: String,
}

fn text(raw: &Value, key: &str) -> String {
    match raw.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn first(raw: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|key| text(raw, key))
        .find(|value| !value.is_empty())
        .unwrap_or_default()
}

/// Maps a provider's user JSON.
pub fn map_user(mapping: Mapping, raw: &Value) -> User {
    match mapping {
        Mapping::Oidc => {
            // An unverified address is not trusted (as the reference: the email is dropped).
            let verified = match raw.get("email_verified") {
                Some(Value::Bool(v)) => *v,
                Some(Value::String(v)) => v == "true",
                _ => false,
            };
            User {
                id: text(raw, "sub"),
                name: text(raw, "name"),
                username: text(raw, "preferred_username"),
                email: if verified {
                    text(raw, "email")
                } else {
                    String::new()
                },
                avatar_url: text(raw, "picture"),
            }
        }
        Mapping::Github => User {
            id: text(raw, "id"),
            name: text(raw, "name"),
            username: text(raw, "login"),
            email: text(raw, "email"),
            avatar_url: text(raw, "avatar_url"),
        },
        Mapping::Gitlab => User {
            id: text(raw, "id"),
            name: text(raw, "name"),
            username: text(raw, "username"),
            email: text(raw, "email"),
            avatar_url: text(raw, "avatar_url"),
        },
        Mapping::Microsoft => User {
            id: text(raw, "id"),
            name: text(raw, "displayName"),
            username: String::new(),
            email: first(raw, &["mail", "userPrincipalName"]),
            avatar_url: String::new(),
        },
        Mapping::Discord => {
            let id = text(raw, "id");
            let avatar = text(raw, "avatar");
            let verified = raw.get("verified").and_then(Value::as_bool) == Some(true);
            User {
                name: first(raw, &["global_name", "username"]),
                username: text(raw, "username"),
                email: if verified {
                    text(raw, "email")
                } else {
                    String::new()
                },
                avatar_url: if avatar.is_empty() {
                    String::new()
                } else {
                    format!("https://cdn.discordapp.com/avatars/{id}/{avatar}.png")
                },
                id,
            }
        }
        Mapping::Facebook => User {
            id: text(raw, "id"),
            name: text(raw, "name"),
            username: String::new(),
            email: text(raw, "email"),
            avatar_url: raw
                .pointer("/picture/data/url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        },
        Mapping::Generic => User {
            id: first(raw, &["id", "sub", "user_id"]),
            name: first(raw, &["name", "full_name", "display_name", "displayName"]),
            username: first(raw, &["username", "login", "preferred_username"]),
            email: first(raw, &["email", "default_email"]),
            avatar_url: first(
                raw,
                &["avatar_url", "picture", "profile_image_url", "image_url"],
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oidc_mapping_drops_an_unverified_email() {
        let raw = json!({"sub": "s1", "email": "a@b.c", "name": "A", "preferred_username": "a"});
        let user = map_user(Mapping::Oidc, &raw);
        assert_eq!(user.id, "s1");
        assert_eq!(user.email, "");
        let raw = json!({"sub": "s1", "email": "a@b.c", "email_verified": true});
        assert_eq!(map_user(Mapping::Oidc, &raw).email, "a@b.c");
    }

    #[test]
    fn github_ids_are_numbers_made_text() {
        let raw = json!({"id": 42, "login": "octo", "avatar_url": "http://x/a.png"});
        let user = map_user(Mapping::Github, &raw);
        assert_eq!((user.id.as_str(), user.username.as_str()), ("42", "octo"));
    }

    #[test]
    fn every_measured_name_is_known() {
        for name in [
            "google",
            "github",
            "apple",
            "oidc3",
            "instagram2",
            "planningcenter",
        ] {
            assert!(find(name).is_some(), "{name}");
        }
        assert!(find("x").is_none());
        assert!(!find("bitbucket").map(|p| p.pkce).unwrap_or(true));
    }
}
