//! `takt stop`: asks a running supervisor to stop every app at the next hyperperiod
//! boundary; the supervised `takt run` then exits 0.

use std::path::Path;

use takt::lifecycle::{self, Request, Response};

use crate::common::Failure;
use crate::status::REQUEST_TIMEOUT;

pub fn stop(control: Option<&Path>) -> Result<(), Failure> {
    let path = control.map_or_else(lifecycle::default_control_path, Path::to_path_buf);
    match lifecycle::request(&path, &Request::Stop, REQUEST_TIMEOUT) {
        Ok(Response::Done(what)) => {
            println!("{what}");
            Ok(())
        }
        Ok(Response::Refused(why)) => {
            Err(Failure::run_failed(format!("takt stop: refused: {why}")))
        }
        Ok(other) => Err(Failure::run_failed(format!(
            "takt stop: unexpected answer {other:?}"
        ))),
        Err(e) => Err(Failure::run_failed(format!("takt stop: {e}"))),
    }
}
