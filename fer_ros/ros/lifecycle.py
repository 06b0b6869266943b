"""fer_lifecycle_node: fer_node as a managed (lifecycle) node, driven through the standard services
(<node>/change_state, <node>/get_state; `ros2 lifecycle set /fer_node configure` on a ROS install).

Same node name, parameters and topics as fer_node; it starts *unconfigured*:

    configure   validate the parameters, load the models (refused when they could not STOP) and warm
                them up (a failure stays unconfigured, with the reason in the log and in /diagnostics)
    activate    publish HOLD (nobody seen yet), subscribe to the camera, start processing and publishing
    deactivate  publish the final HOLD (acknowledged, or 1 s), stop processing, forget the scene; fails
                when the frame worker does not stop (inference hangs), keeping the models
    cleanup     free the models and publishers
    shutdown    the final HOLD when active, then ends the process cleanly (exit status 0); so do SIGINT
                and SIGTERM (fer_ros.ros.startup)

Parameters can be set while unconfigured (the read-only ones too); they are read at configure.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from fer_ros.ros.runtime import FerRuntime, WorkerStuck
from fer_ros.ros.startup import run_node
from fer_ros.settings import params


class FerLifecycleNode(LifecycleNode):
    def __init__(self, files: list[str] | None = None) -> None:
        super().__init__(params.NODE_NAME, allow_undeclared_parameters=True)
        self.runtime = FerRuntime(self, lifecycle=True, files=files)    # ParameterError -> exit 2
        self.finished = False

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.runtime.configure()
        except Exception as exc:      # bad parameter, missing/corrupt model: stay unconfigured, say why
            self.runtime.cleanup()
            self.runtime.reason = f'{type(exc).__name__}: {exc}' if not isinstance(exc, params.ParameterError) \
                else f'invalid parameter: {exc}'
            self.get_logger().error(f'configure failed: {self.runtime.reason}')
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)      # enables the lifecycle publishers (must be called)
        self.runtime.activate()
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        try:
            self.runtime.deactivate()            # the final HOLD while the publishers are still enabled
        except WorkerStuck as exc:               # HOLD is out; the models stay with the stuck worker
            self.get_logger().error(f'deactivate failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        try:
            self.runtime.cleanup()
        except WorkerStuck as exc:
            self.get_logger().error(f'cleanup failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.runtime.finish()                    # the final HOLD if active, then free everything
        self.finished = True                     # run_node stops spinning and exits 0
        return super().on_shutdown(state)

    def close(self) -> None:
        self.runtime.finish()


def main(args=None) -> int:
    return run_node(FerLifecycleNode, args)


if __name__ == '__main__':
    sys.exit(main())
