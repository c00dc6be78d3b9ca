//! Authentication: accounts and orgs ([`routes`]: register, login, refresh), argon2id password
//! hashes ([`password`]), JWT access tokens ([`jwt`]) and rotating refresh tokens
//! ([`refresh`]).

pub mod bearer;
pub mod jwt;
pub mod password;
pub mod refresh;
pub mod routes;

pub use jwt::{AuthKeys, Session};
pub use routes::routes;
