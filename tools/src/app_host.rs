//! `takt app-host`: one app's process under a supervised `takt run` (hidden; the
//! supervisor starts it). The command line and the hosting are the runtime's
//! (`takt::lifecycle::app_main`), shared with every app executable an OTA bundle carries;
//! this binary hosts the apps it links (the ACC demo).

use takt::lifecycle::{self, AppArgs};

use crate::common::{self, Failure};

pub fn app_host(args: &AppArgs) -> Result<(), Failure> {
    lifecycle::host_with_args(args, &common::registry())
        .map_err(|(code, message)| Failure { message, code })
}
