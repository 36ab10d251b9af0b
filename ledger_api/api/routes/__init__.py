"""One module per resource, each an ``APIRouter`` with its own prefix and tags."""
