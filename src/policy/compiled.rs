//! Serving decisions from regorus's compiled form: the Rego virtual machine (RVM).
//!
//! Opt-in (`policy.evaluator = "compiled"`). The tree-walking interpreter spends most of a
//! decision on its own bookkeeping (rule lookups by path strings, `data` references visiting
//! every module); the RVM runs a register program compiled once per bundle and decides the
//! default bundle several times faster. It is not the default because it absorbs errors
//! raised inside rule bodies instead of failing the decision (see [`super::Evaluator`]).
//!
//! It compiles a subset of Rego: a phase whose rules use something it cannot compile (`walk`,
//! for one) or a builtin Gatehouse disables keeps the interpreter, and the load log says which
//! phases run where and why. Tests (`with`), `explain` and coverage always use the interpreter.
//! On inputs that raise no error both evaluators reach the same decision; `policy::tests`
//! checks that on every phase of the default bundle, hostile inputs included.

use std::sync::Arc;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::VmError;
use regorus::rvm::{Program, RegoVM};
use regorus::{CompiledPolicy, Engine, Value};

use super::budget;
use super::error::one_line;
use super::pool::Pool;

/// Builtins the interpreter shadows with failing extensions (see `bundle::disable_clock`). The
/// RVM calls builtins directly, so a program using one of them is not served compiled.
const DISABLED_BUILTINS: &[&str] = &["time.now_ns"];

/// Instructions one decision may execute. The wall-clock budget is the real limit; this only
/// replaces regorus's default of 25,000, which a bundle of a few hundred rules exceeds.
const MAX_INSTRUCTIONS: usize = 50_000_000;

/// One phase's decision rule compiled to an RVM program, with a pool of machines to run it.
pub struct CompiledPhase {
    entry_point: String,
    policy: CompiledPolicy,
    program: Arc<Program>,
    data: Value,
    machines: Pool<RegoVM>,
}

impl CompiledPhase {
    /// Compiles `entry_point` (a rule path such as `data.gatehouse_decision__.call`) of a
    /// prepared engine. `Err` says why the phase cannot be served compiled.
    pub fn compile(engine: &Engine, entry_point: &str) -> Result<CompiledPhase, String> {
        let mut engine = engine.clone();
        let policy = engine
            .compile_with_entrypoint(&Arc::from(entry_point))
            .map_err(|e| one_line(&e))?;
        let program = Compiler::compile_from_policy(&policy, &[entry_point])
            .map_err(|e| e.to_string().replace('\n', " "))?;
        if let Some(builtin) = program
            .builtin_info_table
            .iter()
            .find(|b| DISABLED_BUILTINS.contains(&b.name.as_str()))
        {
            return Err(format!("uses {}, which Gatehouse disables", builtin.name));
        }
        let phase = CompiledPhase {
            entry_point: entry_point.to_string(),
            policy,
            program,
            data: engine.get_data(),
            machines: Pool::new(Vec::new()),
        };
        // One machine now, so a bundle whose data the VM refuses fails at load, not per call.
        phase.machines.give_back(phase.new_machine()?);
        Ok(phase)
    }

    /// Evaluates the entry point for `input` within `budget`. `Err` is the deny reason.
    pub fn evaluate(&self, input: Value, budget: Duration) -> Result<Value, String> {
        let mut machine = match self.machines.take() {
            Some(machine) => machine,
            None => self.new_machine()?,
        };
        machine.set_input(input);
        machine.set_execution_timer_config(Some(budget::timer(budget)));
        match machine.execute_entry_point_by_name(&self.entry_point) {
            Ok(value) => {
                // Drop the input now rather than keep it alive in an idle machine.
                machine.set_input(Value::Null);
                self.machines.give_back(machine);
                Ok(value)
            }
            // A machine that failed is dropped rather than reused.
            Err(VmError::TimeLimitExceeded { .. }) => Err(budget::exceeded(budget)),
            Err(error) => Err(format!("evaluation failed: {error}")),
        }
    }

    fn new_machine(&self) -> Result<RegoVM, String> {
        let mut machine = RegoVM::new_with_policy(self.policy.clone());
        machine.load_program(self.program.clone());
        machine
            .set_data(self.data.clone())
            .map_err(|e| format!("policy data cannot be loaded: {e}"))?;
        // A builtin that fails denies, as in the interpreter (`bundle::compile`).
        machine.set_strict_builtin_errors(true);
        machine.set_max_instructions(MAX_INSTRUCTIONS);
        Ok(machine)
    }
}
