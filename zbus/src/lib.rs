//! zbus: module RPC over Redis, wire-compatible with Go zbus v1.0.1 (reference section 6).
//!
//! A module serves objects (`name@version`) on Redis lists `<module>.<name>@<version>`; a caller pushes
//! a msgpack request there and waits for the reply on a list named after the request id. No ports or
//! URLs to know, several versions of an API side by side, and clients generated from the interface.
//!
//! Better than the Go original (section 6.2): every call has a deadline; errors keep their identity
//! across the bus as `{code, message}`; a malformed request, an unknown method or a panicking method
//! gets an error reply instead of crashing anything; streams count what a slow subscriber drops; and
//! servers, clients and subscribers reconnect by themselves when Redis restarts.
//!
//! Define an interface once with [`interface!`]: it generates the service trait, the typed client stub
//! and the server dispatch.

#![warn(missing_docs)]

mod client;
mod error;
pub mod local_redis;
mod server;
mod stream;
pub mod wire;

pub use client::{Client, DEFAULT_DEADLINE, decode, encode};
pub use error::{CallError, ZbusError, code};
pub use server::{BoxFuture, Dispatch, REPLY_TTL_SECS, Server, ServerStats, Status, WorkerStatus};
pub use stream::{Publisher, Subscription};
pub use wire::{ObjectId, RemoteError};

/// Decodes argument `name` of a dispatched call (used by [`interface!`]).
pub fn decode_input<T: serde::de::DeserializeOwned>(input: Option<Vec<u8>>, name: &str) -> Result<T, CallError> {
    let bytes = input.ok_or_else(|| CallError::Protocol(format!("missing argument '{name}'")))?;
    wire::decode(&bytes).map_err(|err| CallError::Protocol(format!("invalid argument '{name}': {err}")))
}

/// Encodes a method's return value (used by [`interface!`]).
pub fn encode_output<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    wire::encode(value).map_err(|err| CallError::Protocol(format!("cannot encode the result: {err}")))
}

/// Defines a zbus interface once and generates:
/// - the service trait (`async` methods returning `Result<T, RemoteError>`),
/// - a typed client stub (one `async` method per call, each with the client's deadline),
/// - a server adapter implementing [`Dispatch`].
///
/// ```
/// zos_zbus::interface! {
///     /// A calculator.
///     pub trait Calculator, client CalculatorClient, server CalculatorServer, object("calculator", "1.0") {
///         "Add" => fn add(a: i64, b: i64) -> i64;
///         "Divide" => fn divide(a: f64, b: f64) -> f64;
///     }
/// }
/// ```
#[macro_export]
macro_rules! interface {
    (
        $(#[$meta:meta])*
        $vis:vis trait $name:ident, client $client:ident, server $server:ident, object($object:literal, $version:literal) {
            $(
                $(#[$mmeta:meta])*
                $wire:literal => fn $method:ident ( $( $arg:ident : $argty:ty ),* $(,)? ) -> $ret:ty ;
            )*
        }
    ) => {
        $(#[$meta])*
        $vis trait $name: Send + Sync + 'static {
            $(
                $(#[$mmeta])*
                fn $method(&self, $( $arg: $argty ),*)
                    -> impl ::std::future::Future<Output = ::std::result::Result<$ret, $crate::RemoteError>> + Send;
            )*
        }

        #[doc = concat!("Typed client of `", $object, "@", $version, "`.")]
        #[derive(Clone, Debug)]
        $vis struct $client {
            client: $crate::Client,
            module: ::std::string::String,
        }

        impl $client {
            /// The object's id.
            pub fn object() -> $crate::ObjectId {
                $crate::ObjectId::new($object, $version)
            }

            #[doc = concat!("A client of `", $object, "@", $version, "` served by `module`.")]
            pub fn new(client: $crate::Client, module: impl ::std::convert::Into<::std::string::String>) -> Self {
                Self { client, module: module.into() }
            }

            $(
                $(#[$mmeta])*
                pub async fn $method(&self, $( $arg: $argty ),*) -> ::std::result::Result<$ret, $crate::ZbusError> {
                    let inputs = ::std::vec![ $( $crate::encode(&$arg)? ),* ];
                    self.client.call(&self.module, &Self::object(), $wire, inputs).await
                }
            )*
        }

        #[doc = concat!("Serves a [`", stringify!($name), "`] as `", $object, "@", $version, "`.")]
        $vis struct $server<T>(pub ::std::sync::Arc<T>);

        impl<T: $name> $crate::Dispatch for $server<T> {
            fn object(&self) -> $crate::ObjectId {
                $crate::ObjectId::new($object, $version)
            }

            #[allow(unused_mut, unused_variables)]
            fn call(&self, method: ::std::string::String, inputs: ::std::vec::Vec<::std::vec::Vec<u8>>)
                -> $crate::BoxFuture<::std::result::Result<::std::vec::Vec<u8>, $crate::CallError>>
            {
                let service = ::std::sync::Arc::clone(&self.0);
                ::std::boxed::Box::pin(async move {
                    match method.as_str() {
                        $(
                            $wire => {
                                let expected: usize = <[&str]>::len(&[$( stringify!($arg) ),*]);
                                if inputs.len() != expected {
                                    return Err($crate::CallError::Protocol(::std::format!(
                                        "{}() takes {} arguments, got {}", $wire, expected, inputs.len()
                                    )));
                                }
                                let mut inputs = inputs.into_iter();
                                $( let $arg: $argty = $crate::decode_input(inputs.next(), stringify!($arg))?; )*
                                let output = service.$method($( $arg ),*).await.map_err($crate::CallError::Remote)?;
                                $crate::encode_output(&output)
                            }
                        )*
                        other => Err($crate::CallError::Protocol(::std::format!(
                            "unknown method {}.{}", $crate::ObjectId::new($object, $version), other
                        ))),
                    }
                })
            }
        }
    };
}
