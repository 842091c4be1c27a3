from pinworks_common.service import run_service
from pinworks_specialists.app import create_app

run_service(create_app)
