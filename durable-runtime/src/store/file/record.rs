//! The records of the log and the checkpoint, in a small binary encoding: integers little
//! endian, strings as `u32` length + UTF-8. Events and tasks are embedded as the exact JSON
//! text the runtime serialised (never re-encoded, so floats survive bit for bit), statuses as
//! JSON too, so `strings` on a segment shows them. The records are the engine's own changes
//! (`Create`, `Commit`, `Image`): recovery applies what was applied live.

use std::time::{Duration, SystemTime};

use crate::instance_id::InstanceId;
use crate::status::RuntimeStatus;
use crate::store::engine::{Commit, Create, Image, LoggedStatus, Message, NewStatus, Raw, Status};

/// Nanoseconds since the Unix epoch, for a time [`Record::check_times`] accepted (nothing is
/// clamped: a time outside the range is refused before it is written).
pub(crate) fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn time(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

impl Record {
    /// Refuses a record holding a time the log cannot hold (before the epoch, or more than
    /// `u64::MAX` nanoseconds after it), instead of writing it clamped.
    pub(crate) fn check_times(&self) -> std::result::Result<(), crate::store::StoreError> {
        fn check(at: SystemTime, what: &str) -> std::result::Result<(), crate::store::StoreError> {
            let held = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .is_ok_and(|since| u64::try_from(since.as_nanos()).is_ok());
            if held {
                Ok(())
            } else {
                let at = crate::clock::describe(at);
                let what = what.to_string();
                Err(crate::clock::TimeOutOfRange { what, at }.into())
            }
        }
        let create = |c: &Create| -> std::result::Result<(), crate::store::StoreError> {
            check(c.status.created_at(), "the creation time")?;
            c.start_at.map_or(Ok(()), |at| check(at, "start_at"))
        };
        match self {
            Record::Create(c) => create(c),
            Record::Send { at, .. } => {
                at.map_or(Ok(()), |at| check(at, "a message's visible time"))
            }
            Record::Commit(c) => {
                for (_, at) in &c.timers {
                    check(*at, "a timer")?;
                }
                c.subs.iter().try_for_each(create)
            }
            Record::Complete { .. } | Record::Purge { .. } => Ok(()),
        }
    }
}

/// One state change, replayed on recovery through the same code that applied it live.
#[derive(Debug)]
pub(crate) enum Record {
    /// `create_instance`.
    Create(Box<Create>),
    /// `send`: an event into a live instance's inbox.
    Send {
        id: InstanceId,
        event: Raw,
        at: Option<SystemTime>,
    },
    /// `commit_turn`, with the whole status it leaves ([`NewStatus::Replace`] when written,
    /// [`NewStatus::Logged`] when read back).
    Commit(Box<Commit<Events>>),
    /// `complete_activity`: the attempt's result into the inbox.
    Complete {
        id: InstanceId,
        seq: u64,
        event: Raw,
    },
    /// `purge`.
    Purge { id: InstanceId },
}

/// History events of a record: in memory when written live, or where a file holds them when
/// read back (recovery never loads histories; `load_history` reads them on demand).
#[derive(Debug)]
pub(crate) enum Events {
    /// The events' JSON texts.
    Mem(Vec<Raw>),
    /// `count` events encoded as strings (`u32` length + UTF-8 each) in `len` bytes at
    /// `offset` of the decoded bytes.
    At {
        offset: usize,
        len: usize,
        count: usize,
    },
}

impl Events {
    pub(crate) fn count(&self) -> usize {
        match self {
            Events::Mem(events) => events.len(),
            Events::At { count, .. } => *count,
        }
    }
}

/// The whole durable state of one instance, as a checkpoint holds it.
pub(crate) type InstanceImage = Image<ImagedHistory>;

/// A history as a checkpoint holds it: pieces written earlier in the checkpoint (by
/// [`HISTORY`] records, before the image that names them), then events inline in the image.
#[derive(Debug)]
pub(crate) struct ImagedHistory {
    pub(crate) pieces: Vec<Piece>,
    pub(crate) inline: Events,
}

/// `count` events encoded as strings in `len` bytes at `offset` of the checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) count: u32,
}

/// What a checkpoint batch holds, record by record.
#[derive(Debug)]
pub(crate) enum CheckpointRecord {
    /// One instance.
    Image(Box<InstanceImage>),
    /// History bytes the images after it name by position.
    History,
}

const CREATE: u8 = 1;
const SEND: u8 = 2;
const COMMIT: u8 = 3;
const COMPLETE: u8 = 4;
const PURGE: u8 = 5;
/// A checkpoint's instance with its whole history inline (written before format 4).
pub(crate) const IMAGE: u8 = 16;
/// A checkpoint's instance whose history is in [`HISTORY`] records before it, then inline.
pub(crate) const IMAGE_PIECES: u8 = 17;
/// Events of histories (strings back to back), named by the images after them.
pub(crate) const HISTORY: u8 = 18;

/// Appends fields to a buffer.
pub(crate) struct Enc<'a>(pub(crate) &'a mut Vec<u8>);

impl Enc<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("a field is smaller than 4 GiB");
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn opt(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    pub(crate) fn status(&mut self, s: RuntimeStatus) {
        self.u8(match s {
            RuntimeStatus::Pending => 0,
            RuntimeStatus::Running => 1,
            RuntimeStatus::Suspended => 2,
            RuntimeStatus::Completed => 3,
            RuntimeStatus::Failed => 4,
            RuntimeStatus::Terminated => 5,
        });
    }
    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        for x in v {
            self.u64(*x);
        }
    }
    pub(crate) fn pairs<'s>(&mut self, v: impl ExactSizeIterator<Item = (u64, &'s str)>) {
        self.len(v.len());
        for (n, s) in v {
            self.u64(n);
            self.str(s);
        }
    }
}

/// Reads fields back; every error names what was cut short or invalid.
pub(crate) struct Dec<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Result<T> = std::result::Result<T, String>;

impl<'a> Dec<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Dec { bytes, at: 0 }
    }
    pub(crate) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("a record cut short at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
    pub(crate) fn raw(&mut self) -> Result<Raw> {
        self.string()
    }
    pub(crate) fn id(&mut self) -> Result<InstanceId> {
        InstanceId::new(self.string()?).map_err(|e| e.to_string())
    }
    pub(crate) fn opt(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u64().map(Some),
            other => Err(format!("bad option tag {other}")),
        }
    }
    pub(crate) fn bool(&mut self) -> Result<bool> {
        Ok(self.u8()? != 0)
    }
    pub(crate) fn status(&mut self) -> Result<RuntimeStatus> {
        Ok(match self.u8()? {
            0 => RuntimeStatus::Pending,
            1 => RuntimeStatus::Running,
            2 => RuntimeStatus::Suspended,
            3 => RuntimeStatus::Completed,
            4 => RuntimeStatus::Failed,
            5 => RuntimeStatus::Terminated,
            other => return Err(format!("bad runtime status {other}")),
        })
    }
    fn vec<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let n = self.len()?;
        // Bounded by the bytes left, so a damaged count cannot allocate wildly.
        let mut out = Vec::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
    pub(crate) fn u64s(&mut self) -> Result<Vec<u64>> {
        self.vec(|d| d.u64())
    }
    /// Skips a list of strings, returning where its strings are.
    pub(crate) fn events(&mut self) -> Result<Events> {
        let count = self.len()?;
        let offset = self.at;
        for _ in 0..count {
            let n = self.len()?;
            self.take(n)?;
        }
        Ok(Events::At {
            offset,
            len: self.at - offset,
            count,
        })
    }
    pub(crate) fn pairs(&mut self) -> Result<Vec<(u64, Raw)>> {
        self.vec(|d| Ok((d.u64()?, d.raw()?)))
    }
}

impl Enc<'_> {
    /// A whole status: the fields the engine filters on, then its JSON (so recovery need
    /// not parse it).
    pub(crate) fn whole_status(&mut self, status: &Status) {
        self.str(status.instance_id());
        self.str(status.name());
        self.u64(nanos(status.created_at()));
        self.status(status.runtime_status());
        self.str(&status.json());
    }
}

impl Dec<'_> {
    /// A status written by [`Enc::whole_status`], left as JSON.
    fn whole_status(&mut self) -> Result<Status> {
        Ok(Status::Logged(LoggedStatus {
            instance_id: self.id()?,
            name: self.string()?,
            created_at: time(self.u64()?),
            runtime_status: self.status()?,
            json: self.raw()?,
        }))
    }
}

fn encode_create(c: &Create, e: &mut Enc<'_>) {
    e.whole_status(&c.status);
    e.str(&c.start);
    e.opt(c.start_at.map(nanos));
    e.u8(c.replace_finished.into());
}

fn decode_create(d: &mut Dec<'_>) -> Result<Create> {
    Ok(Create {
        status: d.whole_status()?,
        start: d.raw()?,
        start_at: d.opt()?.map(time),
        replace_finished: d.bool()?,
    })
}

impl Record {
    /// Appends the record to `out`; for a turn with history events, returns where the
    /// encoded events are in `out` (their byte range, after the count).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Option<std::ops::Range<usize>> {
        let mut events = None;
        let mut e = Enc(out);
        match self {
            Record::Create(c) => {
                e.u8(CREATE);
                encode_create(c, &mut e);
            }
            Record::Send { id, event, at } => {
                e.u8(SEND);
                e.str(id);
                e.str(event);
                e.opt(at.map(nanos));
            }
            Record::Commit(c) => {
                e.u8(COMMIT);
                e.str(&c.id);
                let Events::Mem(history) = &c.history else {
                    unreachable!("only live turns are encoded")
                };
                e.len(history.len());
                let start = e.0.len();
                for event in history {
                    e.str(event);
                }
                if !history.is_empty() {
                    events = Some(start..e.0.len());
                }
                e.u8(c.replace_history.into());
                e.u64s(&c.consumed);
                e.u64s(&c.completed);
                e.pairs(c.activities.iter().map(|(n, r)| (*n, &**r)));
                e.len(c.timers.len());
                for (id, at) in &c.timers {
                    e.u64(*id);
                    e.u64(nanos(*at));
                }
                e.u64s(&c.cancelled);
                e.len(c.subs.len());
                for sub in &c.subs {
                    encode_create(sub, &mut e);
                }
                e.len(c.messages.len());
                for (to, event) in &c.messages {
                    e.str(to);
                    e.str(event);
                }
                match &c.status {
                    NewStatus::Replace { status, .. } => {
                        e.status(status.runtime_status);
                        e.str(&crate::store::json::status_to_string(status));
                    }
                    NewStatus::Logged {
                        runtime_status,
                        json,
                    } => {
                        e.status(*runtime_status);
                        e.str(json);
                    }
                    NewStatus::Update { .. } => {
                        unreachable!("the file store logs the whole status a turn leaves")
                    }
                }
            }
            Record::Complete { id, seq, event } => {
                e.u8(COMPLETE);
                e.str(id);
                e.u64(*seq);
                e.str(event);
            }
            Record::Purge { id } => {
                e.u8(PURGE);
                e.str(id);
            }
        }
        events
    }

    pub(crate) fn decode(d: &mut Dec<'_>) -> Result<Self> {
        Ok(match d.u8()? {
            CREATE => Record::Create(Box::new(decode_create(d)?)),
            SEND => Record::Send {
                id: d.id()?,
                event: d.raw()?,
                at: d.opt()?.map(time),
            },
            COMMIT => Record::Commit(Box::new(Commit {
                id: d.id()?,
                history: d.events()?,
                replace_history: d.bool()?,
                consumed: d.u64s()?,
                completed: d.u64s()?,
                activities: d.pairs()?,
                timers: d.vec(|d| Ok((d.u64()?, time(d.u64()?))))?,
                cancelled: d.u64s()?,
                subs: d.vec(decode_create)?,
                messages: d.vec(|d| Ok((d.id()?, d.raw()?)))?,
                status: NewStatus::Logged {
                    runtime_status: d.status()?,
                    json: d.raw()?,
                },
            })),
            COMPLETE => Record::Complete {
                id: d.id()?,
                seq: d.u64()?,
                event: d.raw()?,
            },
            PURGE => Record::Purge { id: d.id()? },
            other => return Err(format!("unknown record type {other}")),
        })
    }
}

impl Enc<'_> {
    /// The pieces of a history written earlier in the checkpoint.
    pub(crate) fn pieces(&mut self, pieces: &[Piece]) {
        self.len(pieces.len());
        for p in pieces {
            self.u64(p.offset);
            self.len(p.len as usize);
            self.len(p.count as usize);
        }
    }
}

impl CheckpointRecord {
    /// Decodes one record; `at` is where the decoded bytes start in the checkpoint file, so
    /// that a piece is checked to lie before the image naming it.
    pub(crate) fn decode(d: &mut Dec<'_>, at: u64) -> Result<Self> {
        let pieces = match d.u8()? {
            IMAGE => Vec::new(),
            IMAGE_PIECES => {
                let here = at + d.at as u64;
                d.vec(|d| {
                    let piece = Piece {
                        offset: d.u64()?,
                        len: d.len()? as u32,
                        count: d.len()? as u32,
                    };
                    match piece.offset.checked_add(u64::from(piece.len)) {
                        Some(end) if end <= here => Ok(piece),
                        _ => Err(format!(
                            "a history piece at {} (+{}) does not lie before the image naming it",
                            piece.offset, piece.len
                        )),
                    }
                })?
            }
            HISTORY => {
                let n = d.len()?;
                d.take(n)?;
                return Ok(CheckpointRecord::History);
            }
            other => return Err(format!("unknown checkpoint record type {other}")),
        };
        Ok(CheckpointRecord::Image(Box::new(Image {
            status: d.whole_status()?,
            history: ImagedHistory {
                pieces,
                inline: d.events()?,
            },
            inbox: d.vec(|d| {
                Ok(Message {
                    id: d.u64()?,
                    visible_at: d.opt()?.map(time),
                    timer: d.opt()?,
                    event: d.raw()?,
                })
            })?,
            next_message: d.u64()?,
            attempts: d.pairs()?,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::InstanceStatus;

    #[test]
    fn records_round_trip() {
        let id = InstanceId::new("../é").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let status = InstanceStatus {
            instance_id: id.clone(),
            name: "n".into(),
            version: 1,
            runtime_status: RuntimeStatus::Failed,
            created_at: at,
            last_updated_at: at,
            input: serde_json::json!({"x": [1.5, "é"]}),
            output: None,
            custom_status: None,
            failure: Some(crate::history::Failure::new("k", "m")),
            parent: None,
        };
        let record = Record::Commit(Box::new(Commit {
            id,
            history: Events::Mem(vec![r#"{"v":1}"#.into(), "[2]".into()]),
            replace_history: true,
            consumed: vec![1, 2],
            completed: vec![3],
            activities: vec![(4, "{}".into())],
            timers: vec![(5, at)],
            cancelled: vec![7],
            subs: vec![Create {
                status: Status::Decoded(status.clone()),
                start: "{}".into(),
                start_at: Some(at),
                replace_finished: true,
            }],
            messages: vec![(InstanceId::new("x").unwrap(), "[]".into())],
            status: NewStatus::Replace {
                status: status.clone(),
                changed: true,
            },
        }));
        let mut bytes = Vec::new();
        let range = record.encode(&mut bytes).unwrap();
        let mut d = Dec::new(&bytes);
        let back = Record::decode(&mut d).unwrap();
        assert!(d.done());
        let Record::Commit(mut back) = back else {
            panic!()
        };
        let Events::At { offset, len, count } = back.history else {
            panic!()
        };
        assert_eq!((offset, offset + len, count), (range.start, range.end, 2));
        let mut events = Dec::new(&bytes[range.clone()]);
        assert_eq!(&*events.raw().unwrap(), r#"{"v":1}"#);
        assert_eq!(&*events.raw().unwrap(), "[2]");
        assert!(events.done());
        // Statuses come back as their JSON, which parses to the status written.
        let NewStatus::Logged { json, .. } = &back.status else {
            panic!("{:?}", back.status)
        };
        assert_eq!(
            serde_json::from_str::<InstanceStatus>(json).unwrap(),
            status
        );
        assert_eq!(*back.subs[0].status.get().unwrap(), status);
        // Written again, the record is the same bytes.
        back.history = Events::Mem(vec![r#"{"v":1}"#.into(), "[2]".into()]);
        let mut again = Vec::new();
        Record::Commit(back).encode(&mut again);
        assert_eq!(again, bytes);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&mut Dec::new(&bytes[..cut])).is_err());
        }
    }
}
