//! One module per sub-command; [`dispatch`] routes the parsed command line to them.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use crate::cgroups::Cgroup;
use crate::cgroups::CgroupManager;
use crate::cli::{Cli, Command, Rootless};
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::state::{ContainerState, StateRoot};

/// What every command needs from the global flags.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--root`.
    pub root: StateRoot,
    /// The effective cgroup manager.
    pub cgroup_manager: CgroupManager,
    /// `--rootless`.
    pub rootless: Rootless,
}

impl Context {
    /// Fails if the runtime would have to run rootless (not supported yet).
    pub fn ensure_not_rootless(&self) -> Result<(), Error> {
        let euid = nix::unistd::geteuid();
        match self.rootless {
            Rootless::True => Err(Error::NotSupported {
                what: "rootless mode (--rootless true)".into(),
            }),
            Rootless::Auto if !euid.is_root() => Err(Error::NotSupported {
                what: format!("running as non-root (uid {euid}; rootless mode)"),
            }),
            _ => Ok(()),
        }
    }
}

/// Runs the command; returns the process exit code.
pub fn dispatch(cli: &Cli, command: &Command) -> Result<i32, Error> {
    if let Some(name) = command.unsupported_name() {
        return Err(Error::NotSupported {
            what: format!("the {name} command"),
        });
    }
    let ctx = Context {
        root: StateRoot::new(&cli.root),
        cgroup_manager: cli.effective_cgroup_manager(),
        rootless: cli.rootless,
    };
    match command {
        Command::Create(args) => create::run(&ctx, args).map(|_| 0),
        Command::Start(args) => start::run(&ctx, &args.id).map(|()| 0),
        Command::Run(args) => run::run(&ctx, args),
        Command::State(args) => state::run(&ctx, &args.id).map(|()| 0),
        Command::Kill(args) => kill::run(&ctx, args).map(|()| 0),
        Command::Delete(args) => delete::run(&ctx, args).map(|()| 0),
        Command::List(args) => list::run(&ctx, args).map(|()| 0),
        Command::Spec(args) => spec::run(args, cli.rootless == Rootless::True).map(|()| 0),
        Command::Pause(args) => pause::pause(&ctx, &args.id).map(|()| 0),
        Command::Resume(args) => pause::resume(&ctx, &args.id).map(|()| 0),
        Command::Ps(args) => ps::run(&ctx, args).map(|()| 0),
        Command::Update(args) => update::run(&ctx, args).map(|()| 0),
        Command::Events(args) => events::run(&ctx, args).map(|()| 0),
        Command::Exec(args) => exec::run(&ctx, args),
        Command::Features => features::run().map(|()| 0),
        _ => Err(Error::NotSupported {
            what: "this command".into(),
        }),
    }
}

/// The container's cgroup, or [`Error::NoCgroup`].
pub fn cgroup_of(st: &ContainerState, action: &'static str) -> Result<Cgroup, Error> {
    st.cgroup().ok_or_else(|| Error::NoCgroup {
        action,
        id: st.id.clone(),
    })
}

/// Removes what is left of a container whose init is gone: its cgroup (killing any
/// leftover process in it first), then runs the poststop hooks (failures are logged),
/// then removes its state directory.
pub fn remove_container(ctx: &Context, st: &ContainerState) -> Result<(), Error> {
    if let Some(cg) = st.cgroup() {
        cg.destroy()?;
    }
    crate::hooks::run_poststop(st.hooks.as_ref(), &st.hook_state("stopped", 0));
    let id = ContainerId::parse(&st.id)?;
    ctx.root.remove(&id)?;
    Ok(())
}
