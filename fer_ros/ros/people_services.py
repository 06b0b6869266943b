"""The people services of a fer node (plain or lifecycle), kept apart from the node itself.

    ~/enroll_person  fer_ros/srv/EnrollPerson  name, face_id ('' = the only face in view), duration_s
    ~/forget_person  fer_ros/srv/ForgetPerson  person (id or name)
    ~/list_people    fer_ros/srv/ListPeople    the enrolled people, who is in view, the last enrolment

They only touch the pipeline's ``People`` (fer_ros.hri.people) under the node's pipeline lock and return
at once: an enrolment runs over the next frames in the worker thread, and its outcome is reported by
~/list_people (``last_enrolment``) and in /diagnostics (``people_enrolment_last``).
"""
from __future__ import annotations

import threading

from fer_ros.ros.pipeline_services import NOT_CONFIGURED, PipelineServices, pipeline_lock, refused_when_busy


class PeopleServices(PipelineServices):
    """Creates the three services on ``node`` (arguments: fer_ros.ros.pipeline_services.PipelineServices)."""

    def __init__(self, node, pipeline, lock: threading.Lock) -> None:
        from fer_ros.srv import EnrollPerson, ForgetPerson, ListPeople

        super().__init__(node, pipeline, lock)
        self._services = [node.create_service(EnrollPerson, '~/enroll_person', self._on_enroll),
                          node.create_service(ForgetPerson, '~/forget_person', self._on_forget),
                          node.create_service(ListPeople, '~/list_people', self._on_list)]

    @refused_when_busy
    def _on_enroll(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.accepted, response.message = False, NOT_CONFIGURED
            return response
        face_id = request.face_id.strip()
        with pipeline_lock(self._lock):
            in_view = pipeline.visible_face_ids()
            response.faces_in_view = in_view
            if not face_id and len(in_view) != 1:
                response.accepted = False
                response.message = (f"{len(in_view)} faces in view ({', '.join(in_view) or 'none'}): "
                                    'name one with face_id')
                return response
            try:
                response.message = pipeline.people.request_enrolment(request.name, face_id or in_view[0],
                                                                     float(request.duration_s))
                response.accepted = True
            except ValueError as exc:
                response.accepted, response.message = False, str(exc)
        self._logger.info(f'enroll_person: {response.message}')
        return response

    @refused_when_busy
    def _on_forget(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.message = NOT_CONFIGURED
            return response
        with pipeline_lock(self._lock):
            response.removed = pipeline.people.forget(request.person)
        response.message = f"forgot {', '.join(response.removed)}" if response.removed else \
            f'no enrolled person {request.person!r}'
        self._logger.info(f'forget_person: {response.message}')
        return response

    @refused_when_busy
    def _on_list(self, request, response):
        pipeline = self._pipeline()
        if pipeline is None:
            response.store = NOT_CONFIGURED
            return response
        with pipeline_lock(self._lock):
            people = pipeline.people
            for person in people.enrolled:
                response.person_ids.append(person.person_id)
                response.names.append(person.name)
                response.embeddings.append(len(person.embeddings))
                response.has_baseline.append(person.baseline is not None)
                response.enrolled_at.append(person.enrolled_at)
            for face_id, person_id in sorted(people.in_view().items()):
                response.faces_in_view.append(face_id)
                response.persons_in_view.append(person_id)
            response.last_enrolment = people.last_enrolment
            response.store = people.status()['people_store']
        return response

    def status(self, pipeline) -> dict[str, str]:
        """Who is enrolled and in view, the enrolment state, the people file."""
        return pipeline.people.status()
