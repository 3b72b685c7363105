"""An Autobahn-style WebSocket conformance suite of our own: cases as data
(:mod:`.cases`), a raw-socket runner that classifies each case OK / NON-STRICT /
FAILED against a stack's ``/echo`` (:mod:`.run`), and every stack started and run
(:mod:`.stacks`, behind ``pushbench conformance``)."""
