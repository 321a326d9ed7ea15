//! `takt mode set NAME`: asks a running supervisor to switch every core to mode NAME at the
//! next hyperperiod boundary.

use std::path::Path;

use takt::lifecycle::{self, Request, Response};

use crate::common::Failure;
use crate::status::REQUEST_TIMEOUT;

pub fn set(name: &str, control: Option<&Path>) -> Result<(), Failure> {
    let path = control.map_or_else(lifecycle::default_control_path, Path::to_path_buf);
    let req = Request::SetMode {
        name: name.to_string(),
    };
    match lifecycle::request(&path, &req, REQUEST_TIMEOUT) {
        Ok(Response::Done(what)) => {
            println!("{what}");
            Ok(())
        }
        Ok(Response::Refused(why)) => Err(Failure::bad_input(format!("takt mode set: {why}"))),
        Ok(other) => Err(Failure::run_failed(format!(
            "takt mode set: unexpected answer {other:?}"
        ))),
        Err(e) => Err(Failure::run_failed(format!("takt mode set: {e}"))),
    }
}
