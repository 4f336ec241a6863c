//! The door: concurrent requests decided in batches by one caller at a time (flat combining).
//!
//! Each caller queues its request. When no one is deciding, the caller becomes the decider: it takes
//! every queued request as one batch and decides them together (the engine admits each in turn and
//! applies the admitted ones as one store change), hands the door to the first caller still waiting,
//! and only then finishes its batch (the engine waits for the batch's fsync and answers its callers).
//! So the next batch is decided while this one's fsync runs, and its fsync shares the next one (group
//! commit). Every caller is woken once, with its answer, or to decide; no thread of its own is needed,
//! and a request queued while a batch is decided is in the next one. A turn takes at most
//! [`MAX_BATCH`] requests, oldest first; the decider's own is always among them (it is the oldest).
//!
//! A caller is a thread ([`Door::submit`]) or an async task ([`Door::submit_async`]). A task waits
//! without holding its thread, and only a task that decides leaves the async runtime for its turn, so
//! the runtime hands its thread on once a batch instead of once a request.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The most requests one turn decides. The callers of a batch are answered together and start their
/// next requests together; a smaller batch lets the door decide the next one while they do, instead of
/// all of them waiting on one long decision (the door bench at 64 clients: 16 gave 7 600/s against
/// 6 950/s uncapped on /dev/shm, 8 and 32 less). The rest of the queue is the next turn's.
const MAX_BATCH: usize = 16;

/// What a waiting caller is told: its answer, or that it decides next.
enum Message<A> {
    Decided(A),
    Decide,
}

/// How a waiting caller hears: a thread blocks on a channel, a task awaits one.
enum Waiter<A> {
    Thread(SyncSender<Message<A>>),
    Task(UnboundedSender<Message<A>>),
}

/// Where the answer to one request goes; each request of a batch gets exactly one.
pub struct Reply<A>(Waiter<A>);

impl<A> Reply<A> {
    /// Answers the request.
    pub fn send(self, answer: A) {
        // A thread is blocked on its receiver until it hears; a task that was cancelled is not told.
        self.tell(Message::Decided(answer));
    }

    /// Tells the caller; false when it is gone (a cancelled task).
    fn tell(&self, message: Message<A>) -> bool {
        match &self.0 {
            Waiter::Thread(sender) => sender.send(message).is_ok(),
            Waiter::Task(sender) => sender.send(message).is_ok(),
        }
    }
}

struct Queue<R, A> {
    waiting: Vec<(R, Reply<A>)>,
    deciding: bool,
}

/// Requests of type `R` answered with `A`, decided in batches.
pub struct Door<R, A> {
    queue: Mutex<Queue<R, A>>,
}

impl<R, A> Default for Door<R, A> {
    fn default() -> Self {
        Door { queue: Mutex::new(Queue { waiting: Vec::new(), deciding: false }) }
    }
}

/// The decider's turn; when it ends (answered, or unwinding from a panic in `decide`) the door goes
/// to the first caller still waiting that can hear it, or is left free. A cancelled task's request
/// stays queued and is decided with the next batch; only its answer goes unheard.
struct Turn<'a, R, A>(&'a Door<R, A>);

impl<R, A> Drop for Turn<'_, R, A> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        if !queue.waiting.iter().any(|(_, next)| next.tell(Message::Decide)) {
            queue.deciding = false;
        }
    }
}

/// A task's place at the door while it waits. A task cancelled then (its future dropped) stops
/// hearing, and passes the door on when it was told to decide, so the door is never left waiting for
/// a decider that is gone.
struct Waiting<'a, R, A> {
    door: &'a Door<R, A>,
    answers: UnboundedReceiver<Message<A>>,
    done: bool,
}

impl<R, A> Drop for Waiting<'_, R, A> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.answers.close();
        while let Ok(message) = self.answers.try_recv() {
            if let Message::Decide = message {
                drop(Turn(self.door));
            }
        }
    }
}

impl<R, A> Door<R, A> {
    fn lock(&self) -> MutexGuard<'_, Queue<R, A>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a request; true when its caller decides now (no one was deciding).
    fn enqueue(&self, request: R, waiter: Waiter<A>) -> bool {
        let mut queue = self.lock();
        queue.waiting.push((request, Reply(waiter)));
        !std::mem::replace(&mut queue.deciding, true)
    }

    /// The decider's turn: a batch of the queue decided, the door handed on, the batch finished.
    fn decide_turn<T>(&self, decide: impl FnOnce(Vec<(R, Reply<A>)>) -> T, finish: impl FnOnce(T)) {
        let turn = Turn(self);
        // Only the decider takes requests off the queue, and its own is there: it is in this batch.
        let batch = {
            let mut queue = self.lock();
            let take = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..take).collect()
        };
        let decided = decide(batch);
        drop(turn);
        finish(decided);
    }

    /// Queues `request` and returns its answer. `decide` gets a batch of queued requests, in the order
    /// they came; `finish` gets what it returned, once the door has gone to the next decider. Between
    /// them they answer each request through its [`Reply`]. `None` when the request was dropped
    /// unanswered (`decide` or `finish` panicked or forgot it).
    pub fn submit<T>(
        &self,
        request: R,
        decide: impl FnOnce(Vec<(R, Reply<A>)>) -> T,
        finish: impl FnOnce(T),
    ) -> Option<A> {
        // Room for the turn and the answer, so that a sender never blocks.
        let (sender, answers) = sync_channel(2);
        if !self.enqueue(request, Waiter::Thread(sender)) {
            match answers.recv().ok()? {
                Message::Decided(answer) => return Some(answer),
                Message::Decide => {}
            }
        }
        self.decide_turn(decide, finish);
        Self::answered(answers.try_recv().ok())
    }

    /// [`Door::submit`] from an async task of a multi-threaded tokio runtime: the task waits without
    /// blocking its thread, and decides in [`tokio::task::block_in_place`] (its thread leaves the
    /// runtime for the turn). Cancelling it while it waits leaves its request queued (it may still be
    /// decided and applied, unheard) and the door working.
    pub async fn submit_async<T>(
        &self,
        request: R,
        decide: impl FnOnce(Vec<(R, Reply<A>)>) -> T,
        finish: impl FnOnce(T),
    ) -> Option<A> {
        let (sender, answers) = unbounded_channel();
        let decides = self.enqueue(request, Waiter::Task(sender));
        let mut waiting = Waiting { door: self, answers, done: false };
        if !decides {
            let message = waiting.answers.recv().await;
            waiting.done = true;
            match message? {
                Message::Decided(answer) => return Some(answer),
                Message::Decide => {}
            }
        }
        waiting.done = true;
        tokio::task::block_in_place(|| self.decide_turn(decide, finish));
        Self::answered(waiting.answers.try_recv().ok())
    }

    /// The decider's own answer, which its batch gave (`None`: dropped unanswered).
    fn answered(message: Option<Message<A>>) -> Option<A> {
        match message {
            Some(Message::Decided(answer)) => Some(answer),
            Some(Message::Decide) | None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every request is answered exactly once, with its own answer, whatever the interleaving; batches
    /// really form under contention, and none is larger than [`MAX_BATCH`] with more callers than that.
    #[test]
    fn every_request_gets_its_own_answer_and_batches_form() {
        let door: Door<u64, u64> = Door::default();
        let batches = AtomicUsize::new(0);
        let largest = AtomicUsize::new(0);
        let decide = |batch: Vec<(u64, Reply<u64>)>| {
            batches.fetch_add(1, Ordering::SeqCst);
            largest.fetch_max(batch.len(), Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(200));
            for (request, reply) in batch {
                reply.send(request * 2);
            }
        };
        std::thread::scope(|scope| {
            for client in 0..48u64 {
                let (door, decide) = (&door, &decide);
                scope.spawn(move || {
                    for i in 0..100 {
                        let request = client * 1_000 + i;
                        assert_eq!(door.submit(request, decide, |()| ()), Some(request * 2));
                    }
                });
            }
        });
        let batches = batches.load(Ordering::SeqCst);
        assert!(batches < 48 * 100, "{batches} batches for 4 800 requests");
        let largest = largest.load(Ordering::SeqCst);
        assert_eq!(largest, MAX_BATCH, "batches fill up to MAX_BATCH and no further");
        assert!(!door.lock().deciding && door.lock().waiting.is_empty(), "the door is left free");
    }

    /// A decider that panics does not lock the door: its batch hears nothing (`None`) and the next
    /// caller decides.
    #[test]
    fn a_panicking_decider_leaves_the_door_usable() {
        let door: Door<u64, u64> = Door::default();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            door.submit(1, |_batch| panic!("decide failed"), |()| ());
        }));
        assert!(outcome.is_err());
        let answer = |batch: Vec<(u64, Reply<u64>)>| batch.into_iter().for_each(|(r, reply)| reply.send(r + 1));
        assert_eq!(door.submit(2, answer, |()| ()), Some(3));
    }

    /// A batch is finished (its fsync waited for, its callers answered) after the door went to the next
    /// decider: the next batch is decided and answered meanwhile.
    #[test]
    fn the_next_batch_is_decided_while_one_finishes() {
        let door: Door<u64, u64> = Door::default();
        let (decided, first_decided) = std::sync::mpsc::channel();
        let (answered, second_answered) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let door = &door;
            let first = scope.spawn(move || {
                let decide = |batch| {
                    decided.send(()).expect("main waits");
                    batch
                };
                let finish = |batch: Vec<(u64, Reply<u64>)>| {
                    let second = second_answered.recv_timeout(std::time::Duration::from_secs(10));
                    assert_eq!(second, Ok(20), "the second request is answered while the first finishes");
                    batch.into_iter().for_each(|(r, reply)| reply.send(r * 10));
                };
                door.submit(1, decide, finish)
            });
            first_decided.recv().expect("first decided");
            let decide = |batch: Vec<(u64, Reply<u64>)>| batch.into_iter().for_each(|(r, reply)| reply.send(r * 10));
            answered.send(door.submit(2, decide, |()| ()).expect("answered")).expect("first waits");
            assert_eq!(first.join().expect("first"), Some(10));
        });
    }

    /// Polls a future once, without a runtime (the door's waits need none).
    fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    /// Answers each request of a batch ten times itself, noting it in `decided`.
    fn recorded(decided: &Mutex<Vec<u64>>) -> impl Fn(Vec<(u64, Reply<u64>)>) + '_ {
        move |batch| {
            for (request, reply) in batch {
                decided.lock().expect("decided").push(request);
                reply.send(request * 10);
            }
        }
    }

    /// A thread decides while a task waits; the task is dropped (cancelled) before the turn passes to
    /// it, or once it was `told` to decide, before it runs again. Returns what a later request is
    /// answered (waited for ten seconds at most, so that a door left without a decider fails the test
    /// instead of hanging it), and the requests decided, in order.
    fn cancel_a_waiting_task(told: bool) -> (Option<u64>, Vec<u64>) {
        let door: std::sync::Arc<Door<u64, u64>> = std::sync::Arc::default();
        let decided: std::sync::Arc<Mutex<Vec<u64>>> = std::sync::Arc::default();
        let (deciding, is_deciding) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (answered, later) = std::sync::mpsc::channel();
        let last = (door.clone(), decided.clone());
        let later = std::thread::scope(|scope| {
            let (door, decided) = (&*door, &*decided);
            let first = scope.spawn(move || {
                let decide = |batch| {
                    deciding.send(()).expect("the test waits");
                    released.recv().expect("the test releases");
                    recorded(decided)(batch);
                };
                door.submit(1, decide, |()| ())
            });
            is_deciding.recv().expect("deciding");
            let mut task = Some(Box::pin(door.submit_async(2, recorded(decided), |()| ())));
            let waiting = task.as_mut().map(|task| poll_once(task.as_mut()));
            assert!(waiting.is_some_and(|poll| poll.is_pending()), "the task waits behind the deciding thread");
            if !told {
                task = None;
            }
            release.send(()).expect("first decides");
            assert_eq!(first.join().expect("first"), Some(10));
            // When `told`, the turn went to the task, which is dropped before it runs again.
            drop(task);
            // Not a scoped thread: one stuck at the door must not keep the test from failing.
            std::thread::spawn(move || answered.send(last.0.submit(3, recorded(&last.1), |()| ())));
            later.recv_timeout(std::time::Duration::from_secs(10)).expect("the door answers")
        });
        (later, decided.lock().expect("decided").clone())
    }

    /// A task cancelled while it waits behind a decider hears nothing, and the door still works: its
    /// request is decided with the next batch (a cancelled create may be stored, unheard, as when a
    /// client goes away).
    #[test]
    fn a_task_cancelled_while_it_waits_leaves_the_door_working() {
        assert_eq!(cancel_a_waiting_task(false), (Some(30), vec![1, 2, 3]));
    }

    /// A task cancelled after the turn passed to it, before it ran again, passes the turn on: the
    /// door is not left waiting for a decider that is gone.
    #[test]
    fn a_task_cancelled_when_told_to_decide_passes_the_door_on() {
        assert_eq!(cancel_a_waiting_task(true), (Some(30), vec![1, 2, 3]));
    }

    /// Tasks on a multi-threaded runtime and threads share the door: each hears its own answer, and
    /// batches form.
    #[test]
    fn tasks_and_threads_each_get_their_own_answer() {
        let door: std::sync::Arc<Door<u64, u64>> = std::sync::Arc::default();
        let batches = std::sync::Arc::new(AtomicUsize::new(0));
        let decide = {
            let batches = batches.clone();
            move |batch: Vec<(u64, Reply<u64>)>| {
                batches.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_micros(200));
                batch.into_iter().for_each(|(request, reply)| reply.send(request * 2));
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
        std::thread::scope(|scope| {
            for client in 0..8u64 {
                let (door, decide) = (&door, decide.clone());
                scope.spawn(move || {
                    for i in 0..50 {
                        let request = client * 1_000 + i;
                        assert_eq!(door.submit(request, decide.clone(), |()| ()), Some(request * 2));
                    }
                });
            }
            runtime.block_on(async {
                let tasks: Vec<_> = (8..40u64)
                    .map(|client| {
                        let (door, decide) = (door.clone(), decide.clone());
                        tokio::spawn(async move {
                            for i in 0..50 {
                                let request = client * 1_000 + i;
                                let answer = door.submit_async(request, decide.clone(), |()| ()).await;
                                assert_eq!(answer, Some(request * 2));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
            });
        });
        assert!(batches.load(Ordering::SeqCst) < 40 * 50, "batches formed");
        assert!(!door.lock().deciding && door.lock().waiting.is_empty(), "the door is left free");
    }

    /// A request that `decide` or `finish` drops unanswered is `None`, not a hang.
    #[test]
    fn a_dropped_request_is_none() {
        let door: Door<u64, u64> = Door::default();
        assert_eq!(door.submit(1, drop, |()| ()), None);
        assert_eq!(door.submit(2, |batch| batch, drop), None);
    }
}
