//! The JS VMs: a fixed pool of QuickJS runtimes (`rquickjs`), one OS thread each, every one
//! loaded with the prelude and the same hook files in the same order.
//!
//! Invariants:
//! 1. A VM lives on its own thread and is used by one job at a time; jobs queue on one shared
//!    channel, so a slow hook occupies one VM, never the async runtime.
//! 2. Every invocation is bounded: by time (the interrupt handler stops the script at the
//!    deadline with an uncatchable error) and by memory (the runtime's memory limit makes an
//!    allocation past it fail). Either answers the job with an error; the VM stays usable.
//! 3. Because every VM evaluates the same files in the same order, a route or hook is named by
//!    its index, and any VM can run it.

use super::native::Native;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The JS side of the API (see the file's header comment).
pub const PRELUDE: &str = include_str!("prelude.js");
/// Native stack available to a script (deep recursion fails with an error, not a crash).
const MAX_STACK_BYTES: usize = 1024 * 1024;
/// Memory in use after a job past which the VM runs a full garbage collection.
const GC_AFTER_BYTES: i64 = 16 * 1024 * 1024;

/// A hook file: its name (for error messages) and source.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file name, `main.pb.js`.
    pub name: String,
    /// The file's path.
    pub path: PathBuf,
    /// The JavaScript text.
    pub text: String,
}

/// Why a JS invocation failed.
#[derive(Debug, Clone)]
pub enum JsFailure {
    /// The script threw (message and stack), ran out of memory or was interrupted.
    Script(String),
    /// The pool is gone (reloading or shutting down).
    Unavailable,
}

impl std::fmt::Display for JsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsFailure::Script(text) => write!(f, "{text}"),
            JsFailure::Unavailable => write!(f, "the JS VM pool is not available"),
        }
    }
}

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// A deadline shared between a VM and its interrupt handler (0: none).
#[derive(Clone, Default)]
pub struct Deadline(Arc<AtomicU64>);

impl Deadline {
    fn set(&self, timeout: Duration) {
        self.0
            .store(clock() + timeout.as_millis() as u64, Ordering::SeqCst);
    }
    fn clear(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
    fn passed(&self) -> bool {
        let at = self.0.load(Ordering::SeqCst);
        at != 0 && clock() > at
    }
    /// The time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        let at = self.0.load(Ordering::SeqCst);
        (at != 0).then(|| Duration::from_millis(at.saturating_sub(clock())))
    }
}

/// One VM: a runtime and its context, used on the thread that made it.
pub struct Vm {
    runtime: rquickjs::Runtime,
    context: rquickjs::Context,
    deadline: Deadline,
    timeout: Duration,
}

/// Limits of every VM of a pool.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The longest one invocation may run.
    pub timeout: Duration,
    /// The memory limit of one VM's heap in bytes.
    pub memory_bytes: usize,
}

impl Vm {
    /// Makes a VM and evaluates the prelude then `files`; returns it with the registration
    /// summary (`__pl_summary()`).
    pub fn new(files: &[Source], limits: &Limits, native: Native) -> Result<(Vm, String), String> {
        let runtime = rquickjs::Runtime::new().map_err(|e| e.to_string())?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(MAX_STACK_BYTES);
        let deadline = Deadline::default();
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || watched.passed())));
        let context = rquickjs::Context::full(&runtime).map_err(|e| e.to_string())?;
        let vm = Vm {
            runtime,
            context,
            deadline: deadline.clone(),
            timeout: limits.timeout,
        };
        let summary = vm.context.with(|ctx| -> Result<String, String> {
            use rquickjs::CatchResultExt as _;
            let native = native.with_deadline(deadline.clone());
            let function = rquickjs::Function::new(ctx.clone(), move |op: String, arg: String| {
                native.call(&op, &arg)
            })
            .map_err(|e| e.to_string())?;
            ctx.globals()
                .set("__pl_native", function)
                .map_err(|e| e.to_string())?;
            ctx.eval::<(), _>(PRELUDE)
                .catch(&ctx)
                .map_err(|e| format!("prelude: {e}"))?;
            for file in files {
                deadline.set(limits.timeout);
                let result = eval_source(&ctx, file).catch(&ctx);
                deadline.clear();
                result.map_err(|e| format!("{}: {e}", file.name))?;
            }
            ctx.eval::<String, _>("__pl_summary()")
                .catch(&ctx)
                .map_err(|e| e.to_string())
        })?;
        Ok((vm, summary))
    }

    /// Calls the global function `name` with string arguments; its string result.
    pub fn call(&self, name: &str, args: &[String]) -> Result<String, JsFailure> {
        self.deadline.set(self.timeout);
        let result = self.context.with(|ctx| -> Result<String, String> {
            use rquickjs::CatchResultExt as _;
            let function: rquickjs::Function = ctx
                .globals()
                .get(name)
                .map_err(|e| format!("{name}: {e}"))?;
            let out = match args {
                [a] => function.call::<_, String>((a.as_str(),)),
                [a, b] => function.call::<_, String>((a.as_str(), b.as_str())),
                [a, b, c] => function.call::<_, String>((a.as_str(), b.as_str(), c.as_str())),
                _ => function.call::<_, String>(()),
            };
            out.catch(&ctx).map_err(|e| e.to_string())
        });
        let interrupted = self.deadline.passed();
        self.deadline.clear();
        if result.is_err() {
            // An uncatchable stop skips the prelude's `finally`: reset the invocation state.
            self.context.with(|ctx| {
                let _ = ctx.eval::<(), _>("__pl.writes = null;");
            });
        }
        if self.runtime.memory_usage().malloc_size > GC_AFTER_BYTES {
            self.runtime.run_gc();
        }
        result.map_err(|text| {
            if interrupted {
                JsFailure::Script(format!(
                    "interrupted: the hook ran longer than {:?}",
                    self.timeout
                ))
            } else {
                JsFailure::Script(text)
            }
        })
    }
}

/// Evaluates a hook file under its file name, so that error stacks name `main.pb.js:3:9`
/// (through the file on disk when it still holds the loaded text; otherwise the text,
/// named `eval_script`).
fn eval_source(ctx: &rquickjs::Ctx<'_>, file: &Source) -> rquickjs::Result<()> {
    let options = rquickjs::context::EvalOptions::default();
    if std::fs::read_to_string(&file.path).is_ok_and(|text| text == file.text) {
        ctx.eval_file_with_options::<(), _>(&file.path, options)
    } else {
        ctx.eval_with_options::<(), _>(file.text.as_str(), options)
    }
}

type Job = Box<dyn FnOnce(&Vm) + Send>;

/// A pool of VMs on their own threads.
pub struct Pool {
    sender: Mutex<Option<Sender<Job>>>,
    /// How many VMs run.
    pub size: usize,
}

impl Pool {
    /// Starts `size` VMs (at least one); fails with the first VM's load error (a hook file
    /// that does not evaluate). Returns the pool and the registration summary.
    pub fn start(
        size: usize,
        files: Arc<Vec<Source>>,
        limits: Limits,
        native: Native,
    ) -> Result<(Pool, String), String> {
        let size = size.max(1);
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut summary = None;
        for index in 0..size {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
            let files = Arc::clone(&files);
            let limits = limits.clone();
            let native = native.clone();
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("js-vm-{index}"))
                .spawn(move || vm_thread(files, limits, native, receiver, ready_tx))
                .map_err(|e| e.to_string())?;
            let loaded = ready_rx
                .recv()
                .map_err(|_| "a JS VM thread died while loading".to_string())??;
            summary.get_or_insert(loaded);
        }
        Ok((
            Pool {
                sender: Mutex::new(Some(sender)),
                size,
            },
            summary.unwrap_or_default(),
        ))
    }

    /// Runs `name(args...)` on the next free VM and waits for it (async).
    pub async fn call(&self, name: &str, args: Vec<String>) -> Result<String, JsFailure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let name = name.to_string();
        self.submit(Box::new(move |vm: &Vm| {
            let _ = reply.send(vm.call(&name, &args));
        }))?;
        answer.await.map_err(|_| JsFailure::Unavailable)?
    }

    /// Runs `name(args...)` on the next free VM and blocks until done (threads off the async
    /// runtime only: start-up, migrations, tools).
    pub fn call_blocking(&self, name: &str, args: Vec<String>) -> Result<String, JsFailure> {
        let (reply, answer) = std::sync::mpsc::channel();
        let name = name.to_string();
        self.submit(Box::new(move |vm: &Vm| {
            let _ = reply.send(vm.call(&name, &args));
        }))?;
        answer.recv().map_err(|_| JsFailure::Unavailable)?
    }

    fn submit(&self, job: Job) -> Result<(), JsFailure> {
        let guard = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(sender) => sender.send(job).map_err(|_| JsFailure::Unavailable),
            None => Err(JsFailure::Unavailable),
        }
    }

    /// Stops the VMs once the queued jobs ran (their threads exit).
    pub fn close(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

fn vm_thread(
    files: Arc<Vec<Source>>,
    limits: Limits,
    native: Native,
    receiver: Arc<Mutex<Receiver<Job>>>,
    ready: Sender<Result<String, String>>,
) {
    let vm = match Vm::new(&files, &limits, native) {
        Ok((vm, summary)) => {
            let _ = ready.send(Ok(summary));
            vm
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    loop {
        let job = {
            let guard = receiver.lock().unwrap_or_else(|e| e.into_inner());
            guard.recv()
        };
        match job {
            Ok(job) => job(&vm),
            Err(_) => return,
        }
    }
}
