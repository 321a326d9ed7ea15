//! Typed zero-copy ports over iceoryx2 with LET visibility. (STUB: being written by the port helper)
use std::fmt;
use std::marker::PhantomData;
use crate::manifest::Fingerprint;
use crate::time::JobTime;

pub trait Message: bytemuck::Pod + iceoryx2::prelude::ZeroCopySend + fmt::Debug + Send + Sync + 'static {
    const TYPE_NAME: &'static str;
    fn fingerprint() -> Fingerprint {
        Fingerprint { name: Self::TYPE_NAME, size: std::mem::size_of::<Self>(), align: std::mem::align_of::<Self>(), hash: 0 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sizing { pub buffer: usize, pub history: usize, pub max_borrowed: usize }

#[derive(Debug)]
pub struct PortOpenError(pub String);
impl fmt::Display for PortOpenError { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) } }
impl std::error::Error for PortOpenError {}

pub struct PortNode;
impl PortNode {
    pub fn writer<T: Message>(&self, _topic: &str, _fp: &Fingerprint, _s: Sizing) -> Result<Writer<T>, PortOpenError> { Err(PortOpenError("stub".into())) }
    pub fn reader<T: Message>(&self, _topic: &str, _fp: &Fingerprint, _s: Sizing) -> Result<Reader<T>, PortOpenError> { Err(PortOpenError("stub".into())) }
}
pub struct Writer<T>(PhantomData<T>);
pub struct Reader<T>(PhantomData<T>);
#[derive(Debug)]
pub struct PublishError;
impl<T: Message> Writer<T> {
    pub fn publish(&mut self, _job: &JobTime, _fill: impl FnOnce(&mut T)) -> Result<u64, PublishError> { Err(PublishError) }
}
pub struct Sampled<'a, T> { pub value: &'a T }
impl<T: Message> Reader<T> {
    pub fn read(&mut self, _job: &JobTime) -> Option<Sampled<'_, T>> { None }
}
