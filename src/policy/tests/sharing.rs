//! One store decides for many threads and tasks at once, and they agree.

use super::*;

#[test]
fn decisions_from_many_threads_agree() {
    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndefault allow := false\n\nallow if input.caller.principal == \"alice\"\n\ndeny contains sprintf(\"n=%d\", [input.n]) if input.n % 2 == 1\n",
    )]);
    // What is tested is agreement, not speed: a budget no loaded CI machine exceeds.
    let options = PolicyOptions {
        time_budget: std::time::Duration::from_secs(10),
        ..PolicyOptions::default()
    };
    let store = PolicyStore::load(dir.path(), &[], options).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let n = t * 1000 + i;
                    let decision = store.decide(
                        Phase::Call,
                        &json!({"caller": {"principal": "alice"}, "n": n}),
                    );
                    if n % 2 == 1 {
                        assert_eq!(decision.reasons, vec![format!("n={n}")]);
                    } else {
                        assert!(decision.is_allowed(), "{decision:?}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn the_store_can_be_shared_across_threads_and_tasks() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<PolicyStore>();
    shareable::<Decision>();
}
